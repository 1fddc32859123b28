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
