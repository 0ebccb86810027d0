//! `GET /streams` (admin): what Redis says of each of the seven streams and of each
//! consumer group reading it (`XINFO STREAM`, `XINFO GROUPS`).
//!
//! A stream nobody has written to yet is listed with length 0 and no ids, so the
//! answer always has the seven. `lag` and `entries_read` are null where Redis cannot
//! tell (before 7.0, or after deletions inside the group's range).
//!
//! A partitioned stream is listed under its own name with its partitions' figures
//! added up (lengths, pending, lag, entries read; the most consumers of any one;
//! the oldest first and the newest last id), and each partition under
//! `partitions`.

use actix_web::{HttpResponse, get, web};
use redis::Value;
use serde::Serialize;
use strategist_actors::redis_io::{int, pairs, text};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Caller, ErrorBody};
use crate::events::streams;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list);
}

/// One stream.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StreamInfo {
    /// Its name, without the key prefix.
    name: String,
    /// Entries in it now.
    length: i64,
    /// Id of its first entry.
    first_id: Option<String>,
    /// Id of its last entry.
    last_id: Option<String>,
    /// Its consumer groups.
    groups: Vec<GroupInfo>,
    /// On a partitioned stream, each partition (`<stream>:<n>`) on its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    partitions: Vec<StreamInfo>,
}

/// One consumer group of a stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct GroupInfo {
    /// The group (the worker pool's name).
    name: String,
    /// Consumers in it.
    consumers: i64,
    /// Entries delivered and not acked yet.
    pending: i64,
    /// Entries not delivered yet; null when Redis cannot tell.
    lag: Option<i64>,
    /// Entries the group has read; null when Redis cannot tell.
    entries_read: Option<i64>,
    /// The last entry delivered to the group.
    last_delivered_id: Option<String>,
}

/// The id of an entry as `XINFO STREAM` gives it (`[id, [fields]]`), or nil.
fn entry_id(v: &Value) -> Option<String> {
    match v {
        Value::Array(parts) => parts.first().and_then(text),
        _ => None,
    }
}

fn no_such_key(e: &redis::RedisError) -> bool {
    e.to_string().contains("no such key")
}

impl StreamInfo {
    /// A stream nobody has written to yet.
    fn empty(name: &str) -> StreamInfo {
        StreamInfo {
            name: name.to_owned(),
            length: 0,
            first_id: None,
            last_id: None,
            groups: Vec::new(),
            partitions: Vec::new(),
        }
    }
}

/// The time part of an entry id, for comparing ids of different partitions.
fn id_ms(id: &Option<String>) -> Option<u64> {
    id.as_deref()?.split('-').next()?.parse().ok()
}

async fn stream_info(state: &AppState, name: &str) -> Result<StreamInfo, ApiError> {
    let keys = state.publisher.keys();
    if keys.partition_count(name) == 1 {
        return stream_info_one(state, name).await;
    }
    let mut all = StreamInfo::empty(name);
    for p in keys.partitions(name) {
        let one = stream_info_one(state, &p).await?;
        all.length += one.length;
        if one.first_id.is_some()
            && (all.first_id.is_none() || id_ms(&one.first_id) < id_ms(&all.first_id))
        {
            all.first_id.clone_from(&one.first_id);
        }
        if id_ms(&one.last_id) > id_ms(&all.last_id) {
            all.last_id.clone_from(&one.last_id);
        }
        for g in &one.groups {
            match all.groups.iter_mut().find(|a| a.name == g.name) {
                Some(a) => {
                    a.consumers = a.consumers.max(g.consumers);
                    a.pending += g.pending;
                    a.lag = a.lag.zip(g.lag).map(|(x, y)| x + y);
                    a.entries_read = a.entries_read.zip(g.entries_read).map(|(x, y)| x + y);
                    if id_ms(&g.last_delivered_id) > id_ms(&a.last_delivered_id) {
                        a.last_delivered_id.clone_from(&g.last_delivered_id);
                    }
                }
                None => all.groups.push(g.clone()),
            }
        }
        all.partitions.push(one);
    }
    all.groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// One Redis stream (a partition's name on a partitioned stream).
async fn stream_info_one(state: &AppState, name: &str) -> Result<StreamInfo, ApiError> {
    let key = state.publisher.keys().stream(name);
    let mut conn = state.redis.clone();
    let mut info = StreamInfo::empty(name);
    let stream: Value = match redis::cmd("XINFO")
        .arg("STREAM")
        .arg(&key)
        .query_async(&mut conn)
        .await
    {
        Ok(v) => v,
        Err(e) if no_such_key(&e) => return Ok(info),
        Err(e) => return Err(e.into()),
    };
    for (k, v) in pairs(stream) {
        match k.as_str() {
            "length" => info.length = int(&v).unwrap_or(0),
            "first-entry" => info.first_id = entry_id(&v),
            "last-entry" => info.last_id = entry_id(&v),
            _ => {}
        }
    }
    let groups: Vec<Value> = match redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&key)
        .query_async(&mut conn)
        .await
    {
        Ok(v) => v,
        // Deleted between the two calls.
        Err(e) if no_such_key(&e) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    for g in groups {
        let mut group = GroupInfo {
            name: String::new(),
            consumers: 0,
            pending: 0,
            lag: None,
            entries_read: None,
            last_delivered_id: None,
        };
        for (k, v) in pairs(g) {
            match k.as_str() {
                "name" => group.name = text(&v).unwrap_or_default(),
                "consumers" => group.consumers = int(&v).unwrap_or(0),
                "pending" => group.pending = int(&v).unwrap_or(0),
                "lag" => group.lag = int(&v),
                "entries-read" => group.entries_read = int(&v),
                "last-delivered-id" => group.last_delivered_id = text(&v),
                _ => {}
            }
        }
        info.groups.push(group);
    }
    info.groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(info)
}

/// Every stream with its length, first and last entry id, and its groups.
#[utoipa::path(
    tag = "admin",
    responses(
        (status = 200, description = "`{streams: [...]}`, the seven streams in the contract's order", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/streams")]
async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let mut out = Vec::with_capacity(streams::ALL.len());
    for name in streams::ALL {
        out.push(stream_info(&state, name).await?);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "streams": out })))
}
