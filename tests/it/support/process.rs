//! The real binary as a child process: its stderr collected line by line,
//! readiness awaited from its "listening on" line (never a sleep), and
//! SIGTERM on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_yandex-token");

pub struct Running {
    pub child: Child,
    pub stderr: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
    /// Collects stderr until the child closes it.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts `yandex-token args...` and waits (up to 20 s) for the first
    /// "listening on https://ADDR" line.
    pub fn start(args: &[String]) -> (Running, SocketAddr) {
        Self::start_with_env(args, &[])
    }

    /// As [`Running::start`], with extra environment variables.
    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> (Running, SocketAddr) {
        let mut running = Self::spawn(Command::new(BIN).args(args).envs(env.iter().copied()));
        let addr = running.wait_for_line("listening on https://");
        (running, addr.parse().expect("an address after 'listening on https://'"))
    }

    /// Spawns `command` with stderr collected; waits for nothing.
    pub fn spawn(command: &mut Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let reader = BufReader::new(child.stderr.take().unwrap());
        let collected = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                collected.lock().unwrap().push_str(&format!("{line}\n"));
                tx.send(line).ok();
            }
        });
        Running { child, stderr, lines, reader: Some(reader) }
    }

    /// Waits for a stderr line containing `needle`; returns what follows it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    if let Some(index) = line.find(needle) {
                        return line[index + needle.len()..].trim().to_owned();
                    }
                }
                Err(_) => panic!("no line with {needle:?}; stderr so far:\n{}", self.stderr()),
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        // Every line the child wrote is in `stderr` once this returns.
        if let Some(reader) = self.reader.take() {
            reader.join().ok();
        }
        status
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Runs `yandex-token args...` to completion: (exit code, stdout, stderr).
/// A run that has not ended after 60 s is killed and fails the test (a
/// `serve` that should have refused to start, for one).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let child = Command::new(BIN)
        .args(args)
        .env_remove("YANDEX_TOKEN_CLIENT_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id();
    let (tx, ended) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()).ok());
    let Ok(output) = ended.recv_timeout(Duration::from_secs(60)) else {
        Command::new("kill").args(["-KILL", &pid.to_string()]).status().ok();
        panic!("yandex-token {args:?} did not exit within 60 s");
    };
    let output = output.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Reads one line of the child's stdout, off the async runtime.
pub async fn line(
    stdout: BufReader<std::process::ChildStdout>,
) -> (String, BufReader<std::process::ChildStdout>) {
    tokio::task::spawn_blocking(move || {
        let mut stdout = stdout;
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        (line.trim_end().to_owned(), stdout)
    })
    .await
    .unwrap()
}

/// Waits for the child to exit: (status, rest of stdout, stderr).
pub async fn finished(
    child: Child,
    mut stdout: BufReader<std::process::ChildStdout>,
) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut child = child;
        // End of stdin, as a terminal's Ctrl-D or a closed pipe gives.
        drop(child.stdin.take());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (child.wait().unwrap().code().unwrap_or(-1), rest, stderr)
    })
    .await
    .unwrap()
}
