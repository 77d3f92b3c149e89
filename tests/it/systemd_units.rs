//! The shipped units: `systemd-analyze security` at or under 1.1,
//! `systemd-analyze verify` with no output at all, and the units working
//! under a real systemd booted in `systemd-nspawn` (tests/systemd/nspawn.sh).
//! These need root and Debian's systemd tools, which `.ci/run` installs;
//! elsewhere they say why they skipped.

use std::path::Path;
use std::process::Command;

use crate::support::process::BIN;
use crate::support::{have, required};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n")
}

#[test]
fn the_services_score_at_most_1_1() {
    if !required("systemd-analyze", have("systemd-analyze")) {
        return;
    }
    for unit in ["yandex-token.service", "yandex-token-refresh.service"] {
        // systemd 252 reads --threshold as a whole number out of 100.
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=11", "--no-pager"])
            .arg(Path::new(REPO).join("systemd").join(unit))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{unit}: exposure above 1.1:\n{text}");
        assert!(text.contains(&format!("Overall exposure level for {unit}: 1.")), "{text}");
    }
}

#[test]
fn the_units_verify_without_a_word() {
    if !required("systemd-analyze", have("systemd-analyze"))
        || !required("root (a private mount namespace)", is_root())
    {
        return;
    }
    // verify wants ExecStart= to exist: show it the binary at its installed
    // path inside a private mount namespace, leaving the host untouched.
    let script = format!(
        "mount -t tmpfs tmpfs /usr/local/bin && cp '{BIN}' /usr/local/bin/yandex-token && \
         cd '{REPO}/systemd' && systemd-analyze verify --man=no \
         yandex-token.service yandex-token.socket yandex-token-http.socket \
         yandex-token-refresh.service yandex-token-refresh.timer"
    );
    let out = Command::new("unshare").args(["--mount", "sh", "-c", &script]).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.is_empty(), "verify said:\n{said}");
}

#[test]
fn the_units_work_under_a_real_systemd() {
    if !required("systemd-nspawn (apt-get install systemd-container)", have("systemd-nspawn"))
        || !required("root", is_root())
    {
        return;
    }
    let out =
        Command::new("sh").arg(Path::new(REPO).join("tests/systemd/nspawn.sh")).arg(BIN).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.contains("PASS"), "{said}");
}
