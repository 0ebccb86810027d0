//! A private Redis Cluster for one test: six `redis-server` processes (three masters,
//! three replicas) on free loopback ports, joined with `redis-cli --cluster create`,
//! killed and their folders removed on drop. Shared by the engine's tests and the
//! application's (`tests/common` includes this file by path), so it uses nothing
//! but std, redis and tempfile.
//!
//! Ready in about 2 s: `--repl-diskless-sync-delay 0` lets replicas sync at once,
//! and `--cluster-node-timeout 1000` makes a replica take over about 3 s after its
//! master is killed. Honours `STRATEGIST_REDIS_SERVER` and `STRATEGIST_REDIS_CLI`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// One cluster at a time per test binary: six nodes each (plus replication) per
/// test in parallel on 2 cores made a node miss its start-up PING in CI.
static RUNNING: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// One node of a [`LocalCluster`].
struct Node {
    port: u16,
    /// Its cluster bus port (given, so that `port + 10000` need not be free).
    bus: u16,
    /// Its folder: `nodes.conf` there lets a restarted node rejoin as it was.
    dir: std::path::PathBuf,
    /// `None` once killed on purpose.
    child: Option<Child>,
}

impl Node {
    fn spawn(&mut self) {
        let program =
            std::env::var("STRATEGIST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-port", &self.bus.to_string()])
            .args(["--cluster-node-timeout", "1000"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        self.child = Some(child);
    }
}

/// A running local cluster.
pub struct LocalCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// What `CLUSTER NODES` says about one node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    /// Slot ranges served, for a master.
    pub slots: Vec<(u16, u16)>,
}

impl LocalCluster {
    /// Starts six nodes, makes the cluster and waits until every node says
    /// `cluster_state:ok`; panics saying why not.
    pub fn start() -> LocalCluster {
        {
            let (busy, turn) = &RUNNING;
            let mut busy = busy.lock().unwrap_or_else(|e| e.into_inner());
            while *busy {
                busy = turn.wait(busy).unwrap_or_else(|e| e.into_inner());
            }
            *busy = true;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes = Vec::new();
        // Bind all twelve ports at once so two of them cannot be the same.
        let held: Vec<TcpListener> = (0..12)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(held);
        for i in 0..6 {
            let node_dir = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut node = Node {
                port: ports[2 * i],
                bus: ports[2 * i + 1],
                dir: node_dir,
                child: None,
            };
            node.spawn();
            nodes.push(node);
        }
        let c = LocalCluster { nodes, _dir: dir };
        for n in &c.nodes {
            c.wait_ping(n.port);
        }
        let cli = std::env::var("STRATEGIST_REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
        let out = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(c.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cli}: {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        c.wait_ok(Duration::from_secs(20));
        c.wait_replicas_synced(Duration::from_secs(20));
        c
    }

    fn wait_ping(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self
                .node_cmd::<String>(port, &mut redis::cmd("PING"))
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("cluster node on port {port} did not answer PING within 10 s");
    }

    /// Runs `cmd` on the node at `port` alone.
    pub fn node_cmd<T: redis::FromRedisValue>(
        &self,
        port: u16,
        cmd: &mut redis::Cmd,
    ) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut c = client.get_connection_with_timeout(Duration::from_millis(500))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        cmd.query(&mut c)
    }

    /// Ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// `redis+cluster://` naming every node, so the client finds the cluster
    /// whichever nodes are down.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Waits until every live node says `cluster_state:ok` and agrees that every
    /// slot is served by a master that has not failed.
    pub fn wait_ok(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self.live_ports().iter().all(|&p| {
                self.node_cmd::<String>(p, redis::cmd("CLUSTER").arg("INFO"))
                    .is_ok_and(|s| s.contains("cluster_state:ok"))
                    && self.nodes_seen_by(p).is_some_and(|nodes| {
                        let served: u32 = nodes
                            .iter()
                            .filter(|n| n.master && !n.failed)
                            .flat_map(|n| n.slots.iter())
                            .map(|(a, b)| u32::from(b - a) + 1)
                            .sum();
                        served == 16384
                    })
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every live master has as many online replicas as live replicas
    /// name it (so a failover has a synced replica to promote).
    pub fn wait_replicas_synced(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let nodes = self.nodes_info();
            let ok = nodes.iter().filter(|n| n.master && !n.failed).all(|m| {
                let want = nodes
                    .iter()
                    .filter(|r| r.master_id.as_deref() == Some(&m.id) && !r.failed)
                    .count();
                self.node_cmd::<String>(m.port, redis::cmd("INFO").arg("replication"))
                    .is_ok_and(|s| {
                        s.lines()
                            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                            .count()
                            >= want
                    })
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas did not sync within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn nodes_seen_by(&self, port: u16) -> Option<Vec<NodeInfo>> {
        let text: String = self
            .node_cmd(port, redis::cmd("CLUSTER").arg("NODES"))
            .ok()?;
        Some(text.lines().filter_map(parse_node).collect())
    }

    /// The cluster as the first live node sees it.
    pub fn nodes_info(&self) -> Vec<NodeInfo> {
        self.live_ports()
            .iter()
            .find_map(|&p| self.nodes_seen_by(p))
            .expect("a live node answering CLUSTER NODES")
    }

    /// The port of the master serving `key` now.
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let slot: u16 = self
            .node_cmd(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .unwrap();
        self.nodes_info()
            .into_iter()
            .find(|n| {
                n.master && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .map(|n| n.port)
            .expect("a master serving the slot")
    }

    /// Waits until every live node sees the slot of `key` served by a master
    /// other than `old` that has not failed; that master's port.
    pub fn wait_moved(&self, key: &str, old: u16, timeout: Duration) -> u16 {
        let port = self.live_ports()[0];
        let slot: u16 = self
            .node_cmd(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            let owners: Vec<Option<u16>> = self
                .live_ports()
                .iter()
                .map(|&p| {
                    self.nodes_seen_by(p).and_then(|nodes| {
                        nodes
                            .into_iter()
                            .find(|n| {
                                n.master
                                    && !n.failed
                                    && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
                            })
                            .map(|n| n.port)
                    })
                })
                .collect();
            if let Some(Some(new)) = owners.first()
                && *new != old
                && owners.iter().all(|o| *o == Some(*new))
            {
                return *new;
            }
            assert!(
                Instant::now() < deadline,
                "the slot of {key} did not move off {old} within {timeout:?}: {owners:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port of a live replica of the master at `master_port`.
    pub fn replica_of(&self, master_port: u16) -> u16 {
        let nodes = self.nodes_info();
        let id = nodes
            .iter()
            .find(|n| n.port == master_port)
            .map(|n| n.id.clone())
            .expect("the master");
        nodes
            .iter()
            .find(|n| n.master_id.as_deref() == Some(&id) && !n.failed)
            .map(|n| n.port)
            .expect("a replica of the master")
    }

    /// SIGKILLs the node at `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the node at `port`.
    pub fn signal(&self, port: u16, signal: &str) {
        let pid = self
            .nodes
            .iter()
            .find(|n| n.port == port)
            .and_then(|n| n.child.as_ref())
            .map(|c| c.id())
            .expect("a running node on that port");
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {pid}");
    }

    /// Makes the replica at `replica_port` fall behind its master at
    /// `master_port`: the replica is stopped (SIGSTOP) and the master drops its
    /// replication link, so what the master acknowledges from now on is on the
    /// master alone. Undo with `signal(replica_port, "CONT")`; a replica resumed
    /// while its master lives catches up, one resumed after its master died is
    /// promoted without those writes.
    pub fn cut_off_replica(&self, master_port: u16, replica_port: u16) {
        self.signal(replica_port, "STOP");
        let _: i64 = self
            .node_cmd(
                master_port,
                redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"),
            )
            .unwrap();
    }

    /// Starts the node at `port` again (after [`Self::kill`]): it rejoins with
    /// its `nodes.conf`, as a replica of whoever took over its slots.
    pub fn restart(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port");
        if node.child.is_none() {
            node.spawn();
        }
        self.wait_ping(port);
    }

    /// Promotes the replica at `replica_port` with `CLUSTER FAILOVER` (the
    /// coordinated, lossless one) and waits until it is a master in the view of
    /// every live node.
    pub fn failover(&self, replica_port: u16, timeout: Duration) {
        let _: String = self
            .node_cmd(replica_port, redis::cmd("CLUSTER").arg("FAILOVER"))
            .unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            let role: Option<String> = self
                .node_cmd::<redis::Value>(replica_port, &mut redis::cmd("ROLE"))
                .ok()
                .and_then(|v| match v {
                    redis::Value::Array(items) => items.into_iter().next(),
                    _ => None,
                })
                .and_then(|v| redis::from_redis_value(v).ok());
            let agreed = || {
                self.live_ports().iter().all(|&p| {
                    self.nodes_seen_by(p).is_some_and(|nodes| {
                        nodes.iter().any(|n| n.port == replica_port && n.master)
                    })
                })
            };
            if role.as_deref() == Some("master") && agreed() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "CLUSTER FAILOVER did not complete within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn parse_node(line: &str) -> Option<NodeInfo> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 {
        return None;
    }
    let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
    let flags = f[2];
    let slots = f[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|a| (a, a)),
        })
        .collect();
    Some(NodeInfo {
        id: f[0].to_owned(),
        port,
        master: flags.contains("master"),
        failed: flags.contains("fail") && !flags.contains("fail?"),
        master_id: (f[3] != "-").then(|| f[3].to_owned()),
        slots,
    })
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let (busy, turn) = &RUNNING;
        *busy.lock().unwrap_or_else(|e| e.into_inner()) = false;
        turn.notify_one();
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
