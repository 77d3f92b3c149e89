//! Headless Chromium driven over WebDriver (`chromedriver`, plain JSON over
//! HTTP on loopback): open a page, read and fill its elements, click, read
//! the text a person would see. Chromium runs with a fresh profile, without
//! background networking, and accepts the test PKI's certificate.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One chromedriver with one Chromium session; both end on drop.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver, waits for its "started successfully" line, and
    /// opens a headless session.
    pub async fn start() -> Browser {
        let port = super::free_port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let stdout = driver.stdout.take().unwrap();
        let (ready, started) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let up = lines.any(|line| line.is_ok_and(|l| l.contains("started successfully")));
            ready.send(up).ok();
            // Keep draining, so chromedriver never blocks on a full pipe.
            for _ in lines {}
        });
        assert_eq!(started.await, Ok(true), "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut browser = Browser { driver, addr, session: String::new(), _profile: profile };
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--ignore-certificate-errors",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", browser._profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let created = browser.call("POST", "/session", Some(capabilities)).await;
        browser.session = created["sessionId"].as_str().expect("a session id").to_owned();
        browser
    }

    /// Opens `url` and waits for it to load.
    pub async fn open(&self, url: &str) {
        self.command("POST", "url", json!({ "url": url })).await;
    }

    /// The element `css` names; panics when there is none.
    pub async fn find(&self, css: &str) -> String {
        let found = self.command("POST", "element", json!({"using": "css selector", "value": css})).await;
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no {css}: {found}")).to_owned()
    }

    /// An element's attribute.
    pub async fn attribute(&self, element: &str, name: &str) -> String {
        let path = format!("element/{element}/attribute/{name}");
        self.command("GET", &path, Value::Null).await.as_str().unwrap_or("").to_owned()
    }

    /// Types `text` into an element.
    pub async fn type_into(&self, element: &str, text: &str) {
        self.command("POST", &format!("element/{element}/value"), json!({ "text": text })).await;
    }

    /// Clicks an element (a click that submits a form waits for the page).
    pub async fn click(&self, element: &str) {
        self.command("POST", &format!("element/{element}/click"), json!({})).await;
    }

    /// Waits (up to 10 s, looking every 50 ms) until the page's visible
    /// text contains `needle`; returns the text. A click that submits a
    /// form returns before the next page is there.
    pub async fn text_with(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut text = String::new();
        let path = format!("/session/{}/execute/sync", self.session);
        while std::time::Instant::now() < deadline {
            let script = json!({"script": "return document.body ? document.body.innerText : ''", "args": []});
            if let Ok(value) = self.try_call("POST", &path, Some(script)).await {
                text = value.as_str().unwrap_or("").to_owned();
                if text.contains(needle) {
                    return text;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the page never said {needle:?}; it says: {text}");
    }

    async fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if method == "GET" { None } else { Some(body) };
        self.call(method, &format!("/session/{}/{path}", self.session), body).await
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).await.unwrap_or_else(|err| panic!("{err}"))
    }

    async fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.expect("chromedriver listens");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(connection);
        let bytes = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(bytes))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("WebDriver {method} {path}: {status} {answer}"));
        }
        Ok(answer["value"].clone())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.driver.kill().ok();
        self.driver.wait().ok();
        // chromedriver's Chromium goes with its process group's leader
        // only when asked; make sure no browser outlives the test.
        Command::new("pkill").args(["-f", &self._profile.path().display().to_string()]).status().ok();
    }
}
