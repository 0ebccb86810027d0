//! Opening the shared Redis connection with errors a person can act on. `REDIS_URL`
//! names one server (`redis://`, `rediss://`) or a Redis Cluster
//! (`redis+cluster://h:p,h:p` or `redis://h:p,redis://h:p`): see
//! [`strategist_actors::RedisClient::open`].

use std::time::Duration;

use strategist_actors::{Conn, ConnOptions, RedisClient};

use crate::config::RedisSettings;

/// Why Redis could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum RedisConnectError {
    /// The URL does not parse.
    #[error("REDIS_URL `{url}` is not a valid Redis URL: {source}")]
    BadUrl {
        /// The URL, without its password.
        url: String,
        /// What the parser said.
        source: redis::RedisError,
    },
    /// The key prefix would split a stream's keys over two cluster slots.
    #[error(
        "STRATEGIST_STREAM_PREFIX `{0}` contains `{{` or `}}`: on a Redis Cluster a stream \
         and its `{{stream}}` companions would hash to different slots"
    )]
    BadPrefix(String),
    /// Nothing answered.
    #[error("cannot reach Redis at {url}: {source}")]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// What failed.
        source: redis::RedisError,
    },
}

/// The URL with any password replaced, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 && url[s + 3..at].contains(':') => {
            let cred = &url[s + 3..at];
            let user = cred.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Opens the client and the shared pipelined connection, failing fast (within the
/// configured connect timeout) when Redis is not there.
pub async fn connect(s: &RedisSettings) -> Result<(RedisClient, Conn), RedisConnectError> {
    let url = redacted(&s.url);
    let client = RedisClient::open(s.url.as_str()).map_err(|source| RedisConnectError::BadUrl {
        url: url.clone(),
        source,
    })?;
    let opts = ConnOptions {
        connect_timeout: Duration::from_millis(s.connect_timeout_ms),
        response_timeout: Duration::from_millis(s.response_timeout_ms),
    };
    if client.is_cluster() && s.stream_prefix.contains(['{', '}']) {
        return Err(RedisConnectError::BadPrefix(s.stream_prefix.clone()));
    }
    let mut conn =
        client
            .shared(opts, Some(1))
            .await
            .map_err(|source| RedisConnectError::Unreachable {
                url: url.clone(),
                source,
            })?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|source| RedisConnectError::Unreachable { url, source })?;
    Ok((client, conn))
}

/// The publisher of `[redis] durability`: on the shared connection by default; with
/// a durability wait, on a connection of its own (`WAIT` blocks the connection it
/// runs on), whose response timeout must outlast the wait.
pub async fn publisher(
    redis: &RedisSettings,
    shared: Conn,
    keys: &strategist_actors::Keys,
    catalog: &std::sync::Arc<strategist_actors::Catalog>,
) -> anyhow::Result<strategist_actors::Publisher> {
    let durability: strategist_actors::Durability =
        redis.durability.parse().map_err(anyhow::Error::msg)?;
    if durability == strategist_actors::Durability::Master {
        return Ok(strategist_actors::Publisher::new(
            shared,
            keys.clone(),
            catalog.clone(),
        ));
    }
    anyhow::ensure!(
        redis.durability_timeout_ms < redis.response_timeout_ms,
        "[redis] durability_timeout_ms ({}) must be below response_timeout_ms ({})",
        redis.durability_timeout_ms,
        redis.response_timeout_ms
    );
    let (_, own) = connect(redis).await?;
    tracing::debug!(durability = %redis.durability, timeout_ms = redis.durability_timeout_ms, "publishes wait for durability");
    Ok(
        strategist_actors::Publisher::new(own, keys.clone(), catalog.clone())
            .with_durability(durability, redis.durability_timeout_ms),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            super::redacted("redis://u:secret@h:1/0"),
            "redis://u:***@h:1/0"
        );
        assert_eq!(super::redacted("redis://h:1"), "redis://h:1");
        assert_eq!(super::redacted("postgres://pg@h/db"), "postgres://pg@h/db");
    }
}
