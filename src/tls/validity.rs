//! When a certificate is valid: `notBefore` and `notAfter` read with a
//! small DER walk (Certificate -> TBSCertificate -> Validity) rather than an
//! X.509 crate, since these are the only fields we read; dates by `time`.

/// The `notAfter` of a DER X.509 certificate, as a Unix time.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    validity(cert).map(|(_, not_after)| not_after)
}

/// The `notBefore` and `notAfter` of a DER X.509 certificate, as Unix
/// times. A small DER walk (Certificate -> TBSCertificate -> Validity)
/// rather than an X.509 crate: these are the only fields we read.
pub fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let (_, certificate, _) = der_element(cert)?;
    let (_, mut tbs, _) = der_element(certificate)?;
    // version [0] is optional; then serial, signature, issuer, validity.
    let (tag, _, rest) = der_element(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..3 {
        tbs = der_element(tbs)?.2;
    }
    let (_, validity, _) = der_element(tbs)?;
    let (tag, time, after_not_before) = der_element(validity)?;
    let not_before = parse_time(tag, time)?;
    let (tag, time, _) = der_element(after_not_before)?;
    Some((not_before, parse_time(tag, time)?))
}

/// Splits one DER element off `input`: (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let bytes = usize::from(first & 0x7f);
        if bytes == 0 || bytes > 4 {
            return None;
        }
        let mut length = 0usize;
        for i in 0..bytes {
            length = (length << 8) | usize::from(*input.get(2 + i)?);
        }
        (length, 2 + bytes)
    };
    let end = header.checked_add(length)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`, tag 0x18) to a Unix time. The bytes are checked to
/// be ASCII digits before any is sliced, so no input can split a character.
fn parse_time(tag: u8, bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let digits = std::str::from_utf8(digits).ok()?;
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| rest.get(i..i + 2)?.parse::<u8>().ok();
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    let date =
        time::Date::from_calendar_date(i32::try_from(year).ok()?, time::Month::try_from(month).ok()?, day)
            .ok()?;
    let moment = date.with_hms(hour, minute, second).ok()?;
    Some(moment.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_after_is_read_from_a_real_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 2, 29);
        params.not_after = rcgen::date_time_ymd(2031, 7, 15);
        let cert = params.self_signed(&key).unwrap();
        // 2031-07-15T00:00:00Z
        assert_eq!(not_after(cert.der()), Some(1_941_840_000));
        assert_eq!(validity(cert.der()), Some((951_782_400, 1_941_840_000)));
    }

    #[test]
    fn both_time_formats_parse() {
        assert_eq!(parse_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(0x18, b"20000229120000Z"), Some(951_825_600));
        assert_eq!(parse_time(0x17, b"garbage"), None);
        assert_eq!(parse_time(0x17, b"+70101000000Z"), None);
    }

    /// A multi-byte character where a field boundary falls used to panic
    /// (slicing a str inside a character), aborting the process.
    #[test]
    fn a_time_with_non_ascii_bytes_is_refused_without_a_panic() {
        assert_eq!(parse_time(0x17, "0\u{e9}101000000Z".as_bytes()), None);
        assert_eq!(parse_time(0x18, "200\u{e9}229120000Z".as_bytes()), None);
        assert_eq!(parse_time(0x17, b"\xff\xfe0101000000Z"), None);
        // The same inside a whole certificate's validity.
        let mut cert = vec![0x30, 0x29, 0x30, 0x27, 0x02, 0x01, 0x01, 0x30, 0x00, 0x30, 0x00, 0x30, 0x1e];
        cert.extend_from_slice(&[0x17, 0x0d]);
        cert.extend_from_slice("0\u{e9}101000000Z".as_bytes());
        cert.extend_from_slice(&[0x17, 0x0d]);
        cert.extend_from_slice(b"700101000000Z");
        assert_eq!(validity(&cert), None);
        let good = cert.len() - 30;
        cert[good + 2..good + 15].copy_from_slice(b"690101000000Z");
        assert_eq!(validity(&cert), Some((-31_536_000, 0)), "the same bytes, well formed, parse");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
