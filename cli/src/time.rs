//! Times on the command line: milliseconds since the Unix epoch, or RFC 3339
//! (`2026-03-01T09:30:00Z`, `2026-03-01T09:30:00.250+08:00`, or a bare date
//! `2026-03-01` meaning midnight UTC). Output is RFC 3339 in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Formats ms since the epoch as RFC 3339 UTC with milliseconds.
pub fn format_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let part = self.s.get(self.i..self.i + n)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(part.iter().fold(0, |a, b| a * 10 + u32::from(b - b'0')))
    }
    fn eat(&mut self, options: &[u8]) -> Option<u8> {
        let c = *self.s.get(self.i)?;
        if options.contains(&c) {
            self.i += 1;
            Some(c)
        } else {
            None
        }
    }
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

/// Parses a time argument: ms since the epoch, or RFC 3339, or a bare date (UTC midnight).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let err = || {
        format!(
            "{s:?} is not a time: give milliseconds since the epoch, an RFC 3339 time such as 2026-03-01T09:30:00Z, or a date such as 2026-03-01"
        )
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map_err(|_| err());
    }
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    let y = c.digits(4).ok_or_else(err)?;
    c.eat(b"-").ok_or_else(err)?;
    let mo = c.digits(2).ok_or_else(err)?;
    c.eat(b"-").ok_or_else(err)?;
    let d = c.digits(2).ok_or_else(err)?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(i64::from(y), mo) {
        return Err(err());
    }
    let mut day_ms: i64 = 0;
    let mut offset_min: i64 = 0;
    if !c.done() {
        c.eat(b"Tt ").ok_or_else(err)?;
        let h = c.digits(2).ok_or_else(err)?;
        c.eat(b":").ok_or_else(err)?;
        let mi = c.digits(2).ok_or_else(err)?;
        c.eat(b":").ok_or_else(err)?;
        let sec = c.digits(2).ok_or_else(err)?;
        // 60 would be a leap second; the ledger's clock has none.
        if h > 23 || mi > 59 || sec > 59 {
            return Err(err());
        }
        let mut frac_ms = 0u32;
        if c.eat(b".,").is_some() {
            let start = c.i;
            let mut scale = 100;
            while let Some(dig) = c.digits(1) {
                frac_ms += dig * scale;
                scale /= 10;
            }
            if c.i == start {
                return Err(err());
            }
        }
        day_ms =
            (i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec)) * 1000 + i64::from(frac_ms);
        match c.eat(b"Zz+-").ok_or_else(err)? {
            b'Z' | b'z' => {}
            sign => {
                let oh = c.digits(2).ok_or_else(err)?;
                c.eat(b":").ok_or_else(err)?;
                let om = c.digits(2).ok_or_else(err)?;
                if oh > 23 || om > 59 {
                    return Err(err());
                }
                offset_min = i64::from(oh * 60 + om);
                if sign == b'-' {
                    offset_min = -offset_min;
                }
            }
        }
        if !c.done() {
            return Err(err());
        }
    }
    let ms = days_from_civil(i64::from(y), mo, d) * 86_400_000 + day_ms - offset_min * 60_000;
    u64::try_from(ms).map_err(|_| format!("{s:?} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_accepted_forms() {
        assert_eq!(parse_time("0").unwrap(), 0);
        assert_eq!(parse_time("1795000000000").unwrap(), 1_795_000_000_000);
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time("2000-03-01T00:00:00Z").unwrap(), 951_868_800_000);
        assert_eq!(
            parse_time("2026-03-01T09:30:00.25+08:00").unwrap(),
            parse_time("2026-03-01T01:30:00.250Z").unwrap()
        );
        assert_eq!(
            parse_time("2024-02-29 23:59:59-01:00").unwrap(),
            parse_time("2024-03-01T00:59:59Z").unwrap()
        );
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2023-02-29",
            "2026-03-01T25:00:00Z",
            "2026-03-01T09:30:00",
            "2026-03-01T09:30:00Zjunk",
            "1969-12-31T23:59:59Z",
            "2026-03-01T09:30:00.Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0u64, 951_868_800_123, 1_795_000_000_000, 4_102_444_799_999] {
            assert_eq!(parse_time(&format_ms(ms)).unwrap(), ms, "{}", format_ms(ms));
        }
        assert_eq!(format_ms(951_868_800_123), "2000-03-01T00:00:00.123Z");
    }
}
