//! The binary's command line: --help, --version, usage errors, `show`,
//! `check` on good and bad configurations, every supported key format (made
//! by openssl, as users make them), and `certs/make-self-signed.sh`.

use std::path::Path;
use std::process::Command;

use crate::support::pki::TestPki;
use crate::support::process::run;

#[test]
fn help_lists_every_option_with_its_variable() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for spec in yandex_token::config::OPTIONS {
        assert!(stdout.contains(&format!("--{}", spec.flag)), "--{} missing", spec.flag);
        assert!(stdout.contains(spec.env), "{} missing", spec.env);
    }
    for command in ["serve", "refresh", "show", "check", "demo"] {
        assert!(stdout.contains(command), "{command} missing");
    }
}

#[test]
fn version_prints_the_version() {
    let (code, stdout, _) = run(&["--version"]);
    assert_eq!((code, stdout.trim()), (0, concat!("yandex-token ", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn usage_errors_name_the_bad_value_and_exit_2() {
    let (code, _, stderr) = run(&["--frobnicate", "1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--frobnicate"), "{stderr}");
    let (code, _, stderr) = run(&["serve", "--listen", "not-an-address"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not-an-address"), "{stderr}");
}

#[test]
fn show_prints_the_token_alone_or_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = run(&["show", "--token-dir", dir_arg]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.contains("token.json"), "{stderr}");
    std::fs::write(dir.path().join("token.json"), r#"{"access_token":"AQAA-test","token_type":"bearer"}"#)
        .unwrap();
    let (code, stdout, _) = run(&["show", "--token-dir", dir_arg]);
    assert_eq!((code, stdout.as_str()), (0, "AQAA-test\n"));
}

/// Flags for `check` with a good configuration in `dir`.
fn good_flags(pki: &TestPki, dir: &Path) -> Vec<String> {
    crate::support::server::flags_for(pki, "https://oauth.yandex.ru/", "s3cret", dir)
}

fn run_owned(args: &[String]) -> (i32, String, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

fn replace_flag(flags: &mut [String], flag: &str, value: &str) {
    let index = flags.iter().position(|f| f == flag).unwrap();
    flags[index + 1] = value.to_owned();
}

#[test]
fn check_accepts_a_good_configuration() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["check".to_owned()];
    args.extend(good_flags(&pki, dir.path()));
    let (code, _, stderr) = run_owned(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("configuration OK"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "the secret leaked: {stderr}");
}

#[test]
fn check_names_each_bad_value() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let base = {
        let mut args = vec!["check".to_owned()];
        args.extend(good_flags(&pki, dir.path()));
        args
    };
    let unrelated_key = pki.write_unrelated_key();
    let read_only = dir.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    std::fs::write(read_only.join("blocker"), "").unwrap();
    let not_a_dir = read_only.join("blocker");
    let cases: Vec<(&str, String, &str)> = vec![
        ("--cert", "/nonexistent/fullchain.pem".into(), "/nonexistent/fullchain.pem"),
        ("--key", "/nonexistent/privkey.pem".into(), "/nonexistent/privkey.pem"),
        ("--key", unrelated_key.display().to_string(), "does not match"),
        ("--cert", pki.key.display().to_string(), "no certificates"),
        ("--client-secret-file", "/nonexistent/secret".into(), "/nonexistent/secret"),
        ("--ca-file", "/nonexistent/ca.pem".into(), "/nonexistent/ca.pem"),
        ("--token-dir", not_a_dir.display().to_string(), "not writable"),
    ];
    for (flag, value, expected) in cases {
        let mut args = base.clone();
        replace_flag(&mut args, flag, &value);
        let (code, _, stderr) = run_owned(&args);
        assert_eq!(code, 1, "{flag} {value}: {stderr}");
        assert!(stderr.contains(expected), "{flag} {value}: expected {expected:?} in {stderr}");
    }
    let without_id: Vec<String> = {
        let index = base.iter().position(|f| f == "--client-id").unwrap();
        base.iter()
            .enumerate()
            .filter(|(i, _)| *i != index && *i != index + 1)
            .map(|(_, a)| a.clone())
            .collect()
    };
    let (code, _, stderr) = run_owned(&without_id);
    assert_eq!(code, 1);
    assert!(stderr.contains("--client-id"), "{stderr}");
}

#[test]
fn serve_with_a_bad_configuration_exits_78_naming_the_file() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["serve".to_owned()];
    args.extend(good_flags(&pki, dir.path()));
    replace_flag(&mut args, "--cert", "/nonexistent/cert.pem");
    args.extend(["--listen".into(), "127.0.0.1:0".into()]);
    let (code, _, stderr) = run_owned(&args);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("/nonexistent/cert.pem"), "{stderr}");
}

#[test]
fn serve_checks_the_ca_file_at_startup_though_the_system_roots_wait() {
    // Well-formed PEM around bytes that are no certificate: only a trust
    // anchor parser can tell, and `serve` runs it before it listens.
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let bad_ca = dir.path().join("bad-ca.pem");
    std::fs::write(&bad_ca, "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n")
        .unwrap();
    let mut args = vec!["serve".to_owned()];
    args.extend(good_flags(&pki, dir.path()));
    replace_flag(&mut args, "--ca-file", bad_ca.to_str().unwrap());
    args.extend(["--listen".into(), "127.0.0.1:0".into()]);
    let (code, _, stderr) = run_owned(&args);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("unusable trust anchor in") && stderr.contains("bad-ca.pem"), "{stderr}");
}

#[test]
fn acme_misconfigurations_are_named() {
    let (code, _, stderr) = run(&["serve", "--acme-domain", "*.example.com"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("*.example.com"), "{stderr}");
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["serve".to_owned()];
    args.extend(good_flags(&pki, dir.path()));
    // --cert/--key point nowhere: ACME does not read them.
    replace_flag(&mut args, "--cert", "/nonexistent/cert.pem");
    args.extend(
        ["--listen", "127.0.0.1:0", "--acme-domain", "token.example.com", "--acme-challenge", "http-01"]
            .map(String::from),
    );
    let (code, _, stderr) = run_owned(&args);
    assert_eq!(code, 78, "{stderr}");
    let expected = if cfg!(feature = "acme") { "--redirect-listen" } else { "cargo feature" };
    assert!(stderr.contains(expected), "{stderr}");
}

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
    assert!(status.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&status.stderr));
}

#[test]
fn every_key_format_users_have_is_accepted() {
    let cases: [(&str, &[&str], &str); 4] = [
        ("rsa-pkcs1", &["genrsa", "-traditional", "-out", "key.pem", "2048"], "BEGIN RSA PRIVATE KEY"),
        (
            "rsa-pkcs8",
            &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "key.pem"],
            "BEGIN PRIVATE KEY",
        ),
        (
            "ec-sec1",
            &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "key.pem"],
            "BEGIN EC PRIVATE KEY",
        ),
        (
            "ec-pkcs8",
            &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem"],
            "BEGIN PRIVATE KEY",
        ),
    ];
    let pki = TestPki::new();
    for (name, keygen, header) in cases {
        let dir = tempfile::tempdir().unwrap();
        openssl(keygen, dir.path());
        let key_text = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
        assert!(key_text.contains(header), "{name}: {key_text}");
        openssl(
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
            ],
            dir.path(),
        );
        let mut args = vec!["check".to_owned()];
        args.extend(good_flags(&pki, dir.path()));
        replace_flag(&mut args, "--cert", dir.path().join("cert.pem").to_str().unwrap());
        replace_flag(&mut args, "--key", dir.path().join("key.pem").to_str().unwrap());
        let (code, _, stderr) = run_owned(&args);
        assert_eq!(code, 0, "{name}: {stderr}");
    }
}

#[test]
fn make_self_signed_script_makes_a_usable_pair() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/make-self-signed.sh");
    let output = Command::new(script).args([dir.path().to_str().unwrap(), "localhost"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let key = dir.path().join("privkey.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o077,
        0,
        "the key is readable by others"
    );
    let pki = TestPki::new();
    let mut args = vec!["check".to_owned()];
    args.extend(good_flags(&pki, dir.path()));
    replace_flag(&mut args, "--cert", dir.path().join("fullchain.pem").to_str().unwrap());
    replace_flag(&mut args, "--key", key.to_str().unwrap());
    let (code, _, stderr) = run_owned(&args);
    assert_eq!(code, 0, "{stderr}");
}

/// `exec` puts the token and the client login in the program's environment
/// and becomes the program: same PID, its exit status. Without a usable
/// token it stops before running anything.
#[test]
fn exec_hands_the_token_to_a_program_in_its_own_place() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(tokens.join("accounts")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o700)).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let write = |login: &str, obtained: u64| {
        let doc = serde_json::json!({
            "access_token": format!("y0_token_of_{login}"), "token_type": "bearer", "refresh_token": "1:r:never-shown",
            "expires_in": 86_400, "obtained_at": obtained, "login": login,
            "direct": {"checked_at": obtained, "status": "ok", "client_login": format!("{login}-client")},
        });
        std::fs::write(tokens.join(format!("accounts/{login}.json")), doc.to_string()).unwrap();
    };
    write("alice", now);
    write("old", now - 2 * 86_400);
    let token_dir = tokens.to_str().unwrap();

    let script = "echo \"$YANDEX_DIRECT_TOKEN $YANDEX_DIRECT_LOGIN $$\"; env | grep -c refresh; exit 7";
    let child = std::process::Command::new(crate::support::process::BIN)
        .args(["exec", "--token-dir", token_dir, "--login", "alice", "--", "sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(7), "the program's exit status: {stdout}");
    assert_eq!(stdout, format!("y0_token_of_alice alice-client {pid}\n0\n"), "same PID, no refresh token");

    // No usable token: exit 1, and the program never runs.
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    for (login, why) in [("old", "expired"), ("nobody", "no token stored")] {
        let (code, _, stderr) =
            run(&["exec", "--token-dir", token_dir, "--login", login, "--", "sh", "-c", &touch]);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(!marker.exists(), "the program ran without a token");
    }
    let (code, _, stderr) =
        run(&["exec", "--token-dir", token_dir, "--login", "alice", "--", "/nonexistent/program"]);
    assert_eq!(code, 127, "{stderr}");
    assert!(stderr.contains("/nonexistent/program"), "{stderr}");
    for args in [&["exec", "--login", "alice"][..], &["exec", "--"], &["show", "--", "sh"]] {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
}
