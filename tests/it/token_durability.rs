//! No token is ever lost or half-written: SIGKILL at random moments while
//! tokens are being saved always leaves a whole token.json; a token
//! directory that cannot be written gets a 500 that still hands the token to
//! the user, and a log line without it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use yandex_token::store::{Issued, TokenDoc, TokenStore};

use crate::support::client::Client;
use crate::support::fake_oauth::FakeOAuth;
use crate::support::pki::TestPki;
use crate::support::process::{BIN, Running};
use crate::support::server::flags_for;

/// Token number `seq`: big enough that a write takes a while, and
/// self-checking (every byte of the padding depends on `seq`).
fn token_doc(seq: u64) -> Value {
    let fill = char::from(b'a' + (seq % 26) as u8);
    json!({"access_token": format!("token-{seq}"), "seq": seq, "padding": fill.to_string().repeat(512 * 1024)})
}

fn is_whole(doc: &Value) -> bool {
    let Some(seq) = doc["seq"].as_u64() else { return false };
    let expected = token_doc(seq);
    doc["access_token"] == expected["access_token"] && doc["padding"] == expected["padding"]
}

/// Not a test on its own: the child process the SIGKILL test runs. It
/// saves numbered tokens in a loop, as fast as it can.
#[test]
#[ignore = "a helper process for saves_survive_sigkill_at_random_moments"]
fn save_loop_helper() {
    let Some(dir) = std::env::var_os("YANDEX_TOKEN_SAVE_LOOP_DIR") else { return };
    let store = TokenStore::new(dir.into());
    for seq in 0.. {
        let mut doc = TokenDoc::from_map(token_doc(seq).as_object().unwrap().clone()).unwrap();
        doc.obtained_at_us = Some(seq);
        store.keep_issued(&doc, Issued::Login).unwrap();
        if seq == 0 {
            println!("saving");
        }
    }
}

fn random_below(limit: u64) -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % limit
}

#[test]
fn saves_survive_sigkill_at_random_moments() {
    let exe = std::env::current_exe().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "token_durability::save_loop_helper",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("YANDEX_TOKEN_SAVE_LOOP_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Ready once the first token is on disk; then kill at a random moment.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.any(|line| line.is_ok_and(|l| l.contains("saving"))), "the helper did not start");
        std::thread::sleep(Duration::from_micros(random_below(40_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        let bytes = std::fs::read(dir.path().join("token.json")).unwrap();
        let doc: Value = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            panic!("round {round}: token.json is not whole JSON ({err}), {} bytes", bytes.len())
        });
        assert!(is_whole(&doc), "round {round}: token {} is mixed", doc["seq"]);
        seen.insert(doc["seq"].as_u64().unwrap());
        // A restart clears what the killed write left behind.
        TokenStore::new(dir.path().to_owned()).fix_modes().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("token.json")], "round {round}");
    }
    assert!(seen.len() > 1, "every kill landed on the same token: {seen:?}");
}

/// Runs the server in its own mount namespace where the token directory is
/// read-only or full, drives a flow, and checks the 500 and the log.
async fn flow_with_broken_store(setup: &str, expected_reason: &str) {
    let pki = TestPki::new();
    let fake = FakeOAuth::start(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let mut args = flags_for(&pki, &fake.url(), &fake.state.secret, dir.path());
    args.extend(["--listen".into(), "127.0.0.1:0".into()]);
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!("{setup} && exec '{BIN}' serve {}", quoted.join(" "));
    let mut command = Command::new("unshare");
    command.args(["--mount", "sh", "-c", &script]).env("TOKENS", &tokens);
    let mut server = Running::spawn(&mut command);
    let addr: std::net::SocketAddr = server.wait_for_line("listening on https://").parse().unwrap();
    *fake.state.callback.lock().unwrap() = Some(format!("https://localhost:{}/get_token", addr.port()));

    let mut client = Client::new(&pki.ca_der);
    let start = client.get(addr, "/get_token").await;
    let callback = client.get_url(start.location()).await.location().to_owned();
    let reply = client.get_url(&callback).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["error"], "token_not_stored");
    assert!(body["error_description"].as_str().unwrap().contains(expected_reason), "{body}");
    let issued = fake.state.issued_tokens.lock().unwrap()[0].clone();
    assert_eq!(body["token"]["access_token"], issued.as_str(), "the token must still reach the user");
    assert!(server.terminate().success());
    let stderr = server.stderr();
    assert!(stderr.contains("error=store_failed"), "{stderr}");
    assert!(!stderr.contains(&issued), "the token is in the log: {stderr}");
}

/// Whether this process may make a private mount namespace (root); see
/// [`crate::support::required`] for what happens when it may not.
fn can_unshare() -> bool {
    let can = Command::new("unshare").args(["--mount", "true"]).status().is_ok_and(|s| s.success());
    crate::support::required("a private mount namespace (root)", can)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_directory_still_hands_over_the_token() {
    if !can_unshare() {
        return;
    }
    flow_with_broken_store(
        "mount --bind \"$TOKENS\" \"$TOKENS\" && mount -o remount,bind,ro \"$TOKENS\"",
        "Read-only",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_token_directory_still_hands_over_the_token() {
    if !can_unshare() {
        return;
    }
    // A 64 KiB tmpfs filled to the last block.
    flow_with_broken_store(
        "mount -t tmpfs -o size=64k,mode=0700 tmpfs \"$TOKENS\" && (cat /dev/zero > \"$TOKENS/filler\" 2>/dev/null || true)",
        "No space left",
    )
    .await;
}
