//! A batch of rows as one statement with one parameter: the rows go as a JSON array
//! and the database unpacks it (`json_to_recordset` on PostgreSQL, `json_each` on
//! SQLite). A batch of any size is then one round trip and one prepared statement,
//! where a multi-row `VALUES` list is a statement per row count, split into chunks
//! (see `shapes`), each a round trip: on PostgreSQL over a network, round trips are
//! what a projection's batch waits on.
//!
//! Invariants: only column names and SQL types from this crate's code go into the
//! SQL text; every value travels in the one bound parameter, so no input can change
//! the statement. A JSON `null` becomes SQL `NULL`.

use sea_orm::{DbBackend, Statement, Value};

/// The SQL type of a column read from the JSON rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// `text`.
    Text,
    /// `bigint`.
    BigInt,
}

/// `SELECT <columns> FROM <the rows of the one JSON parameter> WHERE true`: the
/// source of an `INSERT ... SELECT`. The `WHERE true` lets SQLite tell a following
/// `ON CONFLICT` from a join's `ON`.
///
/// ```
/// use sea_orm::DbBackend;
/// use strategist::store::json_rows::{Col, select};
/// let pg = select(DbBackend::Postgres, &[("id", Col::Text), ("n", Col::BigInt)]);
/// assert_eq!(
///     pg,
///     "SELECT id, n FROM json_to_recordset($1::json) AS r(id text, n bigint) WHERE true"
/// );
/// ```
pub fn select(backend: DbBackend, columns: &[(&str, Col)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    match backend {
        DbBackend::Postgres => {
            let typed: Vec<String> = columns
                .iter()
                .map(|(n, t)| {
                    let t = match t {
                        Col::Text => "text",
                        Col::BigInt => "bigint",
                    };
                    format!("{n} {t}")
                })
                .collect();
            format!(
                "SELECT {} FROM json_to_recordset($1::json) AS r({}) WHERE true",
                names.join(", "),
                typed.join(", ")
            )
        }
        _ => {
            let picked: Vec<String> = names
                .iter()
                .map(|n| format!("json_extract(value, '$.{n}') AS {n}"))
                .collect();
            format!("SELECT {} FROM json_each(?) WHERE true", picked.join(", "))
        }
    }
}

/// `INSERT INTO <table> (<columns>) <select> <on_conflict>`: the whole statement
/// for [`statement`].
pub fn insert(
    backend: DbBackend,
    table: &str,
    columns: &[(&str, Col)],
    on_conflict: &str,
) -> String {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    format!(
        "INSERT INTO {table} ({}) {} {on_conflict}",
        names.join(", "),
        select(backend, columns)
    )
}

/// The statement `sql` (built around [`select`]) with `rows` as its one parameter.
pub fn statement(backend: DbBackend, sql: String, rows: Vec<serde_json::Value>) -> Statement {
    let json = serde_json::Value::Array(rows).to_string();
    Statement::from_sql_and_values(backend, sql, [Value::from(json)])
}

/// The same rows as `INSERT ... VALUES` statements of exactly `per_statement` rows
/// each (the last padded by repeating its last row), values bound one by one: for
/// SQLite, where a statement costs no round trip but unpacking JSON costs about
/// twice what binding values does, and one row count keeps one prepared statement
/// per connection. Only for inserts whose `on_conflict` skips a repeated row
/// (`DO NOTHING`), so padding writes and counts nothing. Placeholders are SQLite's
/// `?`.
pub fn values_statements(
    backend: DbBackend,
    table: &str,
    columns: &[(&str, Col)],
    on_conflict: &str,
    rows: &[serde_json::Value],
    per_statement: usize,
) -> Vec<Statement> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let per_statement = per_statement.max(1);
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES {} {on_conflict}",
        names.join(", "),
        vec![one.as_str(); per_statement].join(", ")
    );
    rows.chunks(per_statement)
        .map(|chunk| {
            let last = chunk.len() - 1;
            let values = (0..per_statement).flat_map(|i| {
                let row = &chunk[i.min(last)];
                columns.iter().map(move |(name, col)| {
                    let v = row.get(*name);
                    match col {
                        Col::Text => Value::String(v.and_then(|v| v.as_str()).map(String::from)),
                        Col::BigInt => Value::BigInt(v.and_then(serde_json::Value::as_i64)),
                    }
                })
            });
            Statement::from_sql_and_values(backend, sql.clone(), values.collect::<Vec<_>>())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_statements_have_one_row_count_and_pad_with_the_last_row() {
        let cols = [("a", Col::Text), ("b", Col::BigInt)];
        let rows: Vec<serde_json::Value> = (0..5)
            .map(|i| serde_json::json!({"a": format!("r{i}"), "b": i}))
            .collect();
        let st = values_statements(
            DbBackend::Sqlite,
            "t",
            &cols,
            "ON CONFLICT DO NOTHING",
            &rows,
            4,
        );
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].sql, st[1].sql, "one shape");
        assert_eq!(
            st[0].sql,
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?), (?, ?) ON CONFLICT DO NOTHING"
        );
        let second = st[1].values.as_ref().unwrap();
        assert_eq!(second.0.len(), 8);
        assert!(
            second
                .0
                .chunks(2)
                .all(|r| r[0] == Value::from("r4") && r[1] == Value::BigInt(Some(4)))
        );
        let nulls = values_statements(
            DbBackend::Sqlite,
            "t",
            &cols,
            "",
            &[serde_json::json!({"a": null})],
            1,
        );
        assert_eq!(
            nulls[0].values.as_ref().unwrap().0,
            vec![Value::String(None), Value::BigInt(None)]
        );
    }

    #[test]
    fn sqlite_reads_each_column_by_name() {
        let s = select(DbBackend::Sqlite, &[("a", Col::Text), ("b", Col::BigInt)]);
        assert_eq!(
            s,
            "SELECT json_extract(value, '$.a') AS a, json_extract(value, '$.b') AS b \
             FROM json_each(?) WHERE true"
        );
    }
}
