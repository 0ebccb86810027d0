//! A private `redis-server` on a free loopback port: for the benchmark and the tests
//! (nothing kept on disk, killed when dropped), and for `serve --dev` on a machine
//! without Redis (data kept under a folder with AOF on, shut down cleanly when
//! dropped, and found again by the next run while it still answers).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private Redis.
pub struct LocalRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    program: String,
    /// Keeps its data (AOF) and its folder; stopped with SHUTDOWN, not killed.
    persistent: bool,
}

/// Why a private Redis could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalRedisError {
    /// `redis-server` is not installed or not on the PATH.
    #[error("cannot run {program}: {source} (install redis-server, or give a Redis URL)")]
    Spawn {
        /// What was run.
        program: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// Its data folder could not be made.
    #[error("cannot create {0}: {1}")]
    Folder(String, std::io::Error),
    /// It started but never answered.
    #[error("redis-server on port {0} did not answer PING within 10 s")]
    NotReady(u16),
    /// No free port.
    #[error("no free port: {0}")]
    Port(std::io::Error),
}

impl LocalRedis {
    /// Starts `redis-server` (or `$STRATEGIST_REDIS_SERVER`) on a free port.
    pub fn start() -> Result<LocalRedis, LocalRedisError> {
        let program =
            std::env::var("STRATEGIST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(LocalRedisError::Port)?
            .port();
        let dir =
            std::env::temp_dir().join(format!("strategist-redis-{}-{port}", std::process::id()));
        let mut r = LocalRedis {
            child: None,
            port,
            dir,
            program,
            persistent: false,
        };
        r.spawn()?;
        Ok(r)
    }

    /// Starts one that keeps its streams in `dir` (AOF on), so the next start finds
    /// them. If the one a previous run started there still answers (its port is in
    /// `dir/port`), it is used as it is and left running on drop.
    pub fn start_persistent(dir: &std::path::Path) -> Result<LocalRedis, LocalRedisError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| LocalRedisError::Folder(dir.display().to_string(), e))?;
        let dir = std::fs::canonicalize(dir)
            .map_err(|e| LocalRedisError::Folder(dir.display().to_string(), e))?;
        let program =
            std::env::var("STRATEGIST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        if let Some(port) = std::fs::read_to_string(dir.join("port"))
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok())
        {
            let r = LocalRedis {
                child: None,
                port,
                dir: dir.clone(),
                program: program.clone(),
                persistent: true,
            };
            if r.answers() {
                return Ok(r);
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(LocalRedisError::Port)?
            .port();
        let mut r = LocalRedis {
            child: None,
            port,
            dir,
            program,
            persistent: true,
        };
        r.spawn()?;
        let _ = std::fs::write(r.dir.join("port"), port.to_string());
        Ok(r)
    }

    /// Whether it answers PING now.
    fn answers(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(300)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// Where it keeps its data.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn spawn(&mut self) -> Result<(), LocalRedisError> {
        let _ = std::fs::create_dir_all(&self.dir);
        let aof = if self.persistent { "yes" } else { "no" };
        let child = Command::new(&self.program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", aof, "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| LocalRedisError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<(), LocalRedisError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client =
            redis::Client::open(self.url()).map_err(|_| LocalRedisError::NotReady(self.port))?;
        while Instant::now() < deadline {
            if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(LocalRedisError::NotReady(self.port))
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server at once (SIGKILL): everything in it is lost.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty, as after a crash without persistence).
    pub fn restart(&mut self) -> Result<(), LocalRedisError> {
        self.kill();
        self.spawn()
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        if self.persistent {
            // Only the one this run started: SHUTDOWN flushes the AOF.
            if let Some(mut child) = self.child.take() {
                let _ = redis::Client::open(self.url())
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                    .and_then(|mut c| redis::cmd("SHUTDOWN").query::<()>(&mut c));
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            return;
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
