//! A throwaway PostgreSQL cluster on 127.0.0.1 for the `postgres::` tests:
//! `initdb` into a temporary directory, `pg_ctl start` on a free port with
//! trust authentication, stopped (immediately) when dropped. Run as root
//! (CI), the server runs as the `postgres` user, since PostgreSQL refuses
//! root. The binaries come from `EDESK_PG_BIN` or Debian's
//! `/usr/lib/postgresql/<version>/bin`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn bin_dir() -> PathBuf {
    if let Ok(p) = std::env::var("EDESK_PG_BIN") {
        return PathBuf::from(p);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries: install Debian's postgresql (or set EDESK_PG_BIN)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/pg_ctl: install Debian's postgresql")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let as_postgres = is_root();
        let data = dir.path().join("data");
        if as_postgres {
            run(Command::new("chown").args(["postgres", &dir.path().display().to_string()]));
        }
        let c = Cluster {
            data,
            bin: bin_dir(),
            port: free_port(),
            as_postgres,
            _dir: dir,
        };
        c.pg("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&c.data)
            .status_ok("initdb");
        c.start_server();
        c
    }

    fn pg(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    /// Starts the server again after [`Cluster::stop`].
    pub fn start_server(&self) {
        let socket_dir = self
            .data
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .to_path_buf();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            socket_dir.display()
        );
        self.pg("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(&self.data)
            .arg("-l")
            .arg(
                self.data
                    .parent()
                    .unwrap_or(Path::new("/tmp"))
                    .join("server.log"),
            )
            .args(["-o", &options, "start"])
            .status_ok("pg_ctl start");
    }

    /// Stops the server at once (as a crash would) and starts it again.
    pub fn restart(&self) {
        self.stop();
        self.start_server();
    }

    pub fn stop(&self) {
        let _ = self
            .pg("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .status();
    }

    /// A fresh, empty database and its URL.
    pub fn database(&self, name: &str) -> String {
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            client.batch_execute(&sql).expect("create database");
        }
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(cmd: &mut Command) {
    cmd.status_ok("command");
}

trait StatusOk {
    fn status_ok(&mut self, what: &str);
}

impl StatusOk for Command {
    fn status_ok(&mut self, what: &str) {
        let out = self.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
