//! The built-in email templates: one short introduction per `notification_type`,
//! then the title, the body and the action link, as plain text and as HTML.
//!
//! Invariant: everything taken from the notification is HTML-escaped in the HTML
//! part, and an action link is only made a link when it is `http(s)://` (a
//! `javascript:` URL stays visible text).

use std::fmt::Write as _;

use super::channel::Outgoing;

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The `text/plain` part.
    pub text: String,
    /// The `text/html` part.
    pub html: String,
}

/// The line that tells what kind of message this is.
fn intro(notification_type: &str) -> &'static str {
    match notification_type {
        "briefing_ready" => "Your briefing is ready.",
        "system_alert" => "A system alert needs your attention.",
        "content_suggestion" => "A content suggestion for you.",
        _ => "You have a new notification.",
    }
}

/// The label of the action link.
fn action_label(notification_type: &str) -> &'static str {
    match notification_type {
        "briefing_ready" => "Read the briefing",
        "system_alert" => "See the alert",
        "content_suggestion" => "See the suggestion",
        _ => "Open",
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A subject is one line: line breaks would start new headers in some clients.
fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_web_link(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Renders `n` as an email.
pub fn render(n: &Outgoing) -> Rendered {
    let intro = intro(&n.notification_type);
    let label = action_label(&n.notification_type);
    let mut text = format!("{intro}\n\n{}\n\n{}\n", n.title, n.body);
    if let Some(url) = &n.action_url {
        let _ = write!(text, "\n{label}: {url}\n");
    }
    text.push_str("\n-- \nThe Collective Strategist\n");

    let mut html =
        String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n<body>\n");
    let _ = writeln!(html, "<p>{}</p>", escape_html(intro));
    let _ = writeln!(html, "<h1>{}</h1>", escape_html(&n.title));
    for para in n.body.split("\n\n") {
        let lines: Vec<String> = para.lines().map(escape_html).collect();
        let _ = writeln!(html, "<p>{}</p>", lines.join("<br>\n"));
    }
    if let Some(url) = &n.action_url {
        if is_web_link(url) {
            let _ = writeln!(
                html,
                "<p><a href=\"{}\">{}</a></p>",
                escape_html(url),
                escape_html(label)
            );
        } else {
            let _ = writeln!(html, "<p>{}: {}</p>", escape_html(label), escape_html(url));
        }
    }
    html.push_str("<p>&mdash; The Collective Strategist</p>\n</body></html>\n");
    Rendered {
        subject: one_line(&n.title),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(title: &str, body: &str, url: Option<&str>) -> Outgoing {
        Outgoing {
            id: "01J".into(),
            user_id: "u".into(),
            notification_type: "briefing_ready".into(),
            title: title.into(),
            body: body.into(),
            action_url: url.map(str::to_owned),
            priority: "normal".into(),
            created_at: "2026-11-29T12:00:00.000Z".into(),
        }
    }

    #[test]
    fn html_escapes_everything_from_the_notification() {
        let r = render(&outgoing(
            "<script>x</script>",
            "a & b \"c\" 'd'",
            Some("https://x.example/?a=1&b=\"2\""),
        ));
        assert!(r.html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!r.html.contains("<script>"));
        assert!(r.html.contains("a &amp; b &quot;c&quot; &#39;d&#39;"));
        assert!(r.html.contains(
            "<a href=\"https://x.example/?a=1&amp;b=&quot;2&quot;\">Read the briefing</a>"
        ));
        assert!(r.text.contains("<script>x</script>"), "text is not escaped");
        assert!(
            r.text
                .contains("Read the briefing: https://x.example/?a=1&b=\"2\"")
        );
    }

    #[test]
    fn a_non_web_link_is_not_a_link_and_the_subject_is_one_line() {
        let r = render(&outgoing(
            "one\r\nBcc: x@y",
            "b",
            Some("javascript:alert(1)"),
        ));
        assert!(!r.html.contains("href"));
        assert!(r.html.contains("javascript:alert(1)"));
        assert_eq!(r.subject, "one Bcc: x@y");
    }
}
