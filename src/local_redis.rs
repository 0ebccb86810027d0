//! A private `redis-server` on a free loopback port, for the benchmark and the tests:
//! nothing shared, nothing kept on disk, killed when dropped.

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
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> Result<(), LocalRedisError> {
        let _ = std::fs::create_dir_all(&self.dir);
        let child = Command::new(&self.program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
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
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
