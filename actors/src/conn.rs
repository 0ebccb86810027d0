//! One Redis, whichever shape it has: a single server (or a primary behind a proxy)
//! or a Redis Cluster. [`RedisClient`] opens connections; [`Conn`] is a connection of
//! either kind, used everywhere the engine sends commands.
//!
//! Which one is chosen by the URL ([`RedisClient::open`]): `redis://` and `rediss://`
//! name one server, exactly as before; `redis+cluster://host:port[,host:port...]`
//! (or `rediss+cluster://`) and a comma list of `redis://` URLs name cluster nodes
//! to discover the cluster from.
//!
//! Invariants the rest of the engine relies on:
//! - every command the engine sends names keys of one stream only (the stream and
//!   its `{stream}` companions share a hash slot, see [`crate::keys`]), so a cluster
//!   routes it by its first key, MOVED and ASK included;
//! - a blocking read runs on a connection of its own ([`RedisClient::dedicated`]):
//!   on a cluster, a blocked `XREADGROUP` stalls every clone of the connection to
//!   that node, so no other command may share it;
//! - a cluster connection has no overall response timeout: the per-attempt timeout
//!   bounds each try, and retries through a failover (about 3 s with
//!   `cluster-node-timeout 1000`) are not cut short by it.

use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, Cmd, RedisFuture, RedisResult, Value};

/// Where Redis is and how to reach it; cheap to clone.
///
/// ```
/// use strategist_actors::RedisClient;
/// assert!(!RedisClient::open("redis://127.0.0.1:6379").unwrap().is_cluster());
/// assert!(RedisClient::open("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").unwrap().is_cluster());
/// assert!(RedisClient::open("redis://a:7000,redis://b:7001").unwrap().is_cluster());
/// ```
// A handful exist per process and are cloned only to open connections: the size
// of `redis::Client` next to a list of URLs does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum RedisClient {
    /// One server.
    Single(redis::Client),
    /// A Redis Cluster, found from its seed nodes.
    Cluster(ClusterNodes),
}

/// The seed nodes of a cluster, as `redis://` or `rediss://` URLs.
#[derive(Clone, Debug)]
pub struct ClusterNodes {
    urls: Vec<String>,
}

impl ClusterNodes {
    /// The seed nodes' URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// A connection to the cluster. Bounded as a whole: the client waits for
    /// every seed node it cannot reach, so a wrong or dead list would otherwise
    /// hold the caller for as long as it retries.
    async fn connect(&self, opts: ConnOptions) -> RedisResult<ClusterConnection> {
        let client = self.client(opts.response_timeout, opts.connect_timeout)?;
        let limit = opts.connect_timeout * 2 + Duration::from_secs(1);
        tokio::time::timeout(limit, client.get_async_connection())
            .await
            .unwrap_or_else(|_| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "no cluster node answered in time",
                )))
            })
    }

    fn client(
        &self,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> RedisResult<ClusterClient> {
        ClusterClient::builder(self.urls.iter().map(String::as_str))
            .connection_timeout(connect_timeout)
            .response_timeout(response_timeout)
            // A retry after MOVED or a lost node must not be cut short by the time
            // already spent on the first attempt.
            .overall_response_timeout(None)
            // Retry quickly and often enough to outlast a failover (~3 s), instead of
            // the client's default first wait of 1.28 s.
            .retries(20)
            .min_retry_wait(100)
            .max_retry_wait(1000)
            .build()
    }
}

/// How a connection answers.
#[derive(Clone, Copy, Debug)]
pub struct ConnOptions {
    /// Longest wait to open a connection.
    pub connect_timeout: Duration,
    /// Longest wait for one reply (a blocking read's must outlast its `BLOCK`).
    pub response_timeout: Duration,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
        }
    }
}

impl From<redis::Client> for RedisClient {
    fn from(c: redis::Client) -> Self {
        RedisClient::Single(c)
    }
}

impl RedisClient {
    /// Parses `url`: one server (`redis://`, `rediss://`, as `redis::Client::open`
    /// reads them), or a cluster (`redis+cluster://[user:pass@]h:p[,h:p...]`,
    /// `rediss+cluster://...`, or `redis://h:p,redis://h:p`).
    pub fn open(url: &str) -> RedisResult<Self> {
        let cluster = |scheme: &str, rest: &str| -> RedisResult<Self> {
            // Credentials given once, before the first node, apply to all of them.
            let (cred, nodes) = match rest.rfind('@') {
                Some(at) => (&rest[..=at], &rest[at + 1..]),
                None => ("", rest),
            };
            let urls: Vec<String> = nodes
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("{scheme}://{cred}{n}"))
                .collect();
            Self::nodes(urls)
        };
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            return cluster("redis", rest);
        }
        if let Some(rest) = url.strip_prefix("rediss+cluster://") {
            return cluster("rediss", rest);
        }
        if url.contains(',') {
            return Self::nodes(url.split(',').map(|u| u.trim().to_owned()).collect());
        }
        redis::Client::open(url).map(RedisClient::Single)
    }

    fn nodes(urls: Vec<String>) -> RedisResult<Self> {
        if urls.is_empty() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a cluster URL names no node",
            )));
        }
        // Fails early on a node URL that does not parse.
        ClusterClient::new(urls.iter().map(String::as_str))?;
        Ok(RedisClient::Cluster(ClusterNodes { urls }))
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisClient::Cluster(_))
    }

    /// The single server's client, if this is one.
    pub fn single(&self) -> Option<&redis::Client> {
        match self {
            RedisClient::Single(c) => Some(c),
            RedisClient::Cluster(_) => None,
        }
    }

    /// A client per node to try, in order, for what any one node can serve: the
    /// single server, or each seed node of a cluster. Pub/sub is one (a cluster
    /// passes every `PUBLISH` to all its nodes).
    pub fn node_clients(&self) -> Vec<redis::Client> {
        match self {
            RedisClient::Single(c) => vec![c.clone()],
            RedisClient::Cluster(n) => n
                .urls
                .iter()
                .filter_map(|u| redis::Client::open(u.as_str()).ok())
                .collect(),
        }
    }

    /// A shared, pipelined connection that reconnects by itself: a
    /// `ConnectionManager` (retrying `retries` times per command after a lost
    /// connection) or a cluster connection (which follows MOVED and failovers).
    pub async fn shared(&self, opts: ConnOptions, retries: Option<usize>) -> RedisResult<Conn> {
        match self {
            RedisClient::Single(c) => {
                let mut cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(opts.connect_timeout))
                    .set_response_timeout(Some(opts.response_timeout));
                if let Some(n) = retries {
                    cfg = cfg.set_number_of_retries(n);
                }
                Ok(Conn::Manager(
                    ConnectionManager::new_with_config(c.clone(), cfg).await?,
                ))
            }
            RedisClient::Cluster(n) => Ok(Conn::Cluster(n.connect(opts).await?)),
        }
    }

    /// A connection nobody else uses, for blocking reads: it does not reconnect by
    /// itself on a single server (the caller opens a new one after an error).
    pub async fn dedicated(&self, opts: ConnOptions) -> RedisResult<Conn> {
        match self {
            RedisClient::Single(c) => {
                let cfg = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(opts.connect_timeout))
                    .set_response_timeout(Some(opts.response_timeout));
                Ok(Conn::Multiplexed(
                    c.get_multiplexed_async_connection_with_config(&cfg).await?,
                ))
            }
            RedisClient::Cluster(n) => Ok(Conn::Cluster(n.connect(opts).await?)),
        }
    }
}

/// A connection to a single server or to a cluster; cheap to clone (clones share
/// the connection).
///
/// ```no_run
/// # async fn demo() -> redis::RedisResult<()> {
/// use strategist_actors::{ConnOptions, RedisClient};
/// let client = RedisClient::open("redis+cluster://127.0.0.1:7000")?;
/// let mut conn = client.shared(ConnOptions::default(), None).await?;
/// let n: u64 = redis::cmd("XLEN").arg("user.events").query_async(&mut conn).await?;
/// # let _ = n; Ok(()) }
/// ```
#[derive(Clone)]
pub enum Conn {
    /// A single server's reconnecting connection.
    Manager(ConnectionManager),
    /// A single server's plain connection (blocking reads).
    Multiplexed(MultiplexedConnection),
    /// A cluster connection.
    Cluster(ClusterConnection),
}

impl From<ConnectionManager> for Conn {
    fn from(c: ConnectionManager) -> Self {
        Conn::Manager(c)
    }
}

impl From<MultiplexedConnection> for Conn {
    fn from(c: MultiplexedConnection) -> Self {
        Conn::Multiplexed(c)
    }
}

impl From<ClusterConnection> for Conn {
    fn from(c: ClusterConnection) -> Self {
        Conn::Cluster(c)
    }
}

impl Conn {
    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    /// Runs a command that names no key on the node that serves `key` (on a
    /// single server: on it). `CLIENT ID`, `CLIENT UNBLOCK` and `INFO` need it on a
    /// cluster, where they would otherwise go to a random node or to all of them.
    pub async fn on_node_of(&mut self, key: &str, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Cluster(c) => {
                let route = Route::with_key(key, SlotAddr::Master);
                c.route_command(
                    cmd.clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
            }
            other => cmd.query_async(other).await,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Multiplexed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Multiplexed(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A blocked read answered `UNBLOCKED` because its node changed role (a manual
/// failover): nothing is wrong with the read, it must simply be sent again (to the
/// new master).
pub fn is_unblocked(e: &redis::RedisError) -> bool {
    e.code() == Some("UNBLOCKED")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(c: &RedisClient) -> Vec<String> {
        match c {
            RedisClient::Cluster(n) => n.urls().to_vec(),
            RedisClient::Single(_) => Vec::new(),
        }
    }

    #[test]
    fn cluster_urls_name_every_node_with_the_credentials() {
        let c = RedisClient::open("redis+cluster://u:pw@h1:7000,h2:7001").unwrap();
        assert_eq!(
            urls(&c),
            vec!["redis://u:pw@h1:7000", "redis://u:pw@h2:7001"]
        );
        let c = RedisClient::open("rediss+cluster://h1:7000").unwrap();
        assert_eq!(urls(&c), vec!["rediss://h1:7000"]);
        let c = RedisClient::open("redis://h1:7000, redis://h2:7001").unwrap();
        assert_eq!(urls(&c), vec!["redis://h1:7000", "redis://h2:7001"]);
    }

    #[test]
    fn a_plain_url_stays_a_single_server() {
        assert!(
            !RedisClient::open("redis://u:pw@h:6379/2")
                .unwrap()
                .is_cluster()
        );
        assert!(RedisClient::open("redis+cluster://").is_err());
        assert!(RedisClient::open("nonsense").is_err());
    }
}
