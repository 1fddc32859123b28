//! UTC timestamps for story fields, log lines and log file names, without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    milli: u32,
}

fn parts(ms: u64) -> Parts {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Parts {
        year,
        month,
        day,
        hour: rem / 3600,
        min: rem / 60 % 60,
        sec: rem % 60,
        milli: (ms % 1000) as u32,
    }
}

/// `2026-11-23T20:49:01Z`: what story fields hold.
pub fn iso_seconds(ms: u64) -> String {
    let p = parts(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        p.year, p.month, p.day, p.hour, p.min, p.sec
    )
}

/// `2026-11-23T20:49:01.123Z`: the prefix of every log line.
pub fn iso_millis(ms: u64) -> String {
    let p = parts(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.min, p.sec, p.milli
    )
}

/// `2026-11-23`: the `created` field.
pub fn date(ms: u64) -> String {
    let p = parts(ms);
    format!("{:04}-{:02}-{:02}", p.year, p.month, p.day)
}

/// `20261123T204901.123Z`: a log file name that sorts by time.
pub fn file_stamp(ms: u64) -> String {
    let p = parts(ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.min, p.sec, p.milli
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days-from-civil).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of an instant (UTC).
pub fn year_of(ms: u64) -> i64 {
    parts(ms).year
}

/// `2026-11-23T20:49:01Z` (also with milliseconds, or a `+01:00`
/// offset) back to milliseconds since the epoch; `None` if it is not one.
pub fn parse_iso(s: &str) -> Option<u64> {
    let s = s.trim();
    let num = |a: usize, b: usize| -> Option<i64> {
        let t = s.get(a..b)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if s.len() < 20 || s.as_bytes().get(4) != Some(&b'-') || s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, min, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let f = &frac[..digits];
        millis = format!("{f:0<3}")[..3].parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let h: i64 = o[1..3].parse().ok()?;
            let m: i64 = o[4..6].parse().ok()?;
            let v = h * 3600 + m * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset;
    u64::try_from(secs * 1000 + millis).ok()
}

/// Seconds east of UTC of this machine's local time zone at `secs` since
/// the epoch (`TZ`, else `/etc/localtime`); 0 when it cannot be told.
pub fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which we own.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff as i64
    }
}

/// `03:00`: the local wall-clock time of an instant, for people; with the
/// date (`Dec 8 03:00`) when it is not within the next day.
pub fn local_clock(ms: u64, now_ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let local = (secs + local_offset(secs)).max(0) as u64 * 1000;
    let p = parts(local);
    if ms > now_ms + 20 * 3600 * 1000 {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "{} {} {:02}:{:02}",
            MONTHS[(p.month - 1) as usize],
            p.day,
            p.hour,
            p.min
        )
    } else {
        format!("{:02}:{:02}", p.hour, p.min)
    }
}

/// `1.2s`, `3m04s`, `1h02m`: durations in summaries and the dashboard.
pub fn human_duration(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        format!("{}.{}s", secs, ms % 1000 / 100)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_parse_back_to_the_instant() {
        for ms in [0, 1_709_210_096_000, 1_796_539_499_000] {
            assert_eq!(parse_iso(&iso_seconds(ms)), Some(ms));
        }
        assert_eq!(
            parse_iso("2024-02-29T12:34:56.789Z"),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            parse_iso("2026-12-06T03:00:00+01:00"),
            parse_iso("2026-12-06T02:00:00Z")
        );
        for bad in [
            "",
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "2026-12-06 03:00:00Z",
            "2026-12-06T03:00:00",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28),
            2
        );
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso_seconds(0), "1970-01-01T00:00:00Z");
        // 2024-02-29T12:34:56.789Z, a leap day.
        let ms = 1_709_210_096_789;
        assert_eq!(iso_millis(ms), "2024-02-29T12:34:56.789Z");
        assert_eq!(date(ms), "2024-02-29");
        assert_eq!(file_stamp(ms), "20240229T123456.789Z");
        assert_eq!(iso_seconds(4_102_444_800_000), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(1234), "1.2s");
        assert_eq!(human_duration(184_000), "3m04s");
        assert_eq!(human_duration(3_720_000), "1h02m");
    }
}
