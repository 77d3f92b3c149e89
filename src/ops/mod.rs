//! Running as a service: socket activation and the open-files limit
//! ([`systemd`]), SIGHUP/SIGTERM ([`signals`]), and getting and renewing
//! the certificate over ACME ([`acme`], cargo feature `acme`). It imports
//! every floor below, `http` included (the app it serves).

#[cfg(feature = "acme")]
pub mod acme;
pub mod signals;
pub mod systemd;
