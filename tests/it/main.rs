//! The one integration-test binary: the real server over real TLS on
//! loopback, a fake Yandex, and the real binary driven by curl.

mod support;

mod accounts;
#[cfg(feature = "acme")]
mod acme;
mod cli;
mod direct_api;
mod e2e_curl;
mod get_token_flow;
mod hostile;
mod limits;
mod never_lose;
mod operations;
mod paste_flow;
mod routes;
mod safe_defaults;
mod systemd_units;
mod terminal_flows;
mod token_durability;
mod upstream_failures;
mod wire;
