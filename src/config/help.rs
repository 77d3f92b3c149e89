//! The text of `--help`, generated from the option table.

use super::options::OPTIONS;

/// The text of `--help`, generated from [`OPTIONS`].
pub fn help_text() -> String {
    let mut out = String::from(concat!(
        "yandex-token ",
        env!("CARGO_PKG_VERSION"),
        "\nGet a Yandex OAuth token for the Direct API: one HTTPS server, no nginx, no Flask.\n\n",
        "Usage: yandex-token [COMMAND] [OPTIONS]\n\n",
        "Commands:\n",
        "  serve     run the HTTPS server (the default)\n",
        "  refresh   trade the stored refresh_token for a new token\n",
        "  show      print the stored access_token alone; exit 1 when there is none\n",
        "  check     validate the configuration and exit 0 or 1\n",
        "  demo      run the whole flow on https://localhost:8443 against a built-in stand-in for Yandex\n",
        "  list      one line per stored account: login, client login, expires, days left, Direct status\n",
        "  status    ask the Direct API about each stored token now; exit 1 if any is unusable\n",
        "  login     the pasted-code flow in a terminal: print the authorize URL, read the code Yandex shows\n",
        "            from stdin; no domain, certificate or open port needed\n",
        "  device    the device flow: show a code to enter at Yandex's device page, wait for Allow.\n",
        "            With --device-id the token is a device token: a user holds at most 30 per app,\n",
        "            and a new one revokes the oldest\n",
        "  revoke    --login L: revoke the account's token at Yandex where Yandex allows it (device\n",
        "            tokens) and remove its files either way\n",
        "  exec      [--login L] -- COMMAND [ARGS...]: run COMMAND (in place of this process) with\n",
        "            YANDEX_DIRECT_TOKEN and YANDEX_DIRECT_LOGIN set; exit 1 first when no usable token\n\n",
        "Tokens: Yandex lets an app revoke only device tokens (--device-id, with serve, login or\n",
        "device). A regular token stays valid until its expiry, or until its owner revokes it at\n",
        "id.yandex.ru (Data access), changes the password or logs out on all devices.\n\n",
        "Options (each also read from its environment variable):\n",
    ));
    for spec in OPTIONS {
        let flag = format!("--{} {}", spec.flag, spec.value).trim_end().to_owned();
        out.push_str(&format!("  {flag:<28} {}\n", spec.help));
        out.push_str(&format!("  {:<28} env {}; default: {}\n", "", spec.env, spec.default));
    }
    out.push_str("  -h, --help                   print this help\n");
    out.push_str("  -V, --version                print the version\n");
    out
}
