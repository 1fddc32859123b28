//! When a usage cap lifts, read from the words a CLI printed, for CLIs
//! that do not say it in their structured output. The forms are the CLIs'
//! own (from their bundles, and their output against a stand-in server):
//!
//! - Claude Code 2.1: `You've hit your session limit · resets 6:44am (UTC)`,
//!   `… · resets Dec 8, 2:20pm (Europe/Berlin)`, `… resets 4pm (UTC)`, with
//!   the year when it is not this one (`Jan 3, 2027, 4pm`).
//! - Codex 0.171: `You’ve hit your usage limit. … or try again at 7:49 AM.`,
//!   `… try again at Dec 8th, 2026 2:20 PM.`
//!
//! Both print the agent's local time, which is ours (it inherits our
//! environment); Claude names the zone, and `UTC` is read as such. Both
//! drop the seconds: the cap lifts within the minute named, so the time
//! returned is that minute's end.

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// The reset time (seconds since the epoch) in `text`, if it says one:
/// the end of the minute it names.
/// `now` is the time now; `offset(t)` the local zone's offset east of UTC
/// in seconds at `t`.
pub fn reset_time(text: &str, now: i64, offset: &dyn Fn(i64) -> i64) -> Option<i64> {
    let lower = text.to_lowercase();
    let at = ["resets ", "try again at "]
        .iter()
        .find_map(|a| lower.find(a).map(|i| i + a.len()))?;
    let rest = &lower[at..];
    // The zone Claude names after the time.
    let zone = rest
        .find('(')
        .and_then(|i| rest[i + 1..].split(')').next())
        .map(str::trim);
    let end = rest
        .find(['(', '\n', '·'])
        .unwrap_or(rest.len())
        .min(rest.find(". ").unwrap_or(rest.len()));
    let words: Vec<&str> = rest[..end]
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| !w.is_empty())
        .collect();
    let clock = parse_clock(&words)?;
    let (mut month, mut day, mut year) = (None, None, None);
    for w in &words {
        if let Some(m) = MONTHS.iter().position(|m| w.starts_with(m)) {
            month = Some(m as u32 + 1);
        } else if month.is_some() && day.is_none() {
            let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
            let suffix = &w[digits.len()..];
            if !digits.is_empty() && ["", "st", "nd", "rd", "th"].contains(&suffix) {
                day = digits.parse().ok().filter(|d| (1..=31).contains(d));
            }
        } else if day.is_some() && year.is_none() && w.len() == 4 {
            year = w.parse::<i64>().ok();
        }
    }
    let utc = matches!(zone, Some("utc" | "gmt" | "etc/utc" | "z"));
    let off = |t: i64| if utc { 0 } else { offset(t) };
    let local_now = now + off(now);
    let this_year = crate::time::year_of((local_now.max(0) as u64) * 1000);
    let at_local = |y: i64, m: u32, d: u32| crate::time::days_from_civil(y, m, d) * 86_400 + clock;
    let to_utc = |local: i64| local - off(local - off(now));
    let minute_start = match (month, day) {
        (Some(m), Some(d)) => {
            let mut t = to_utc(at_local(year.unwrap_or(this_year), m, d));
            // A date without a year that is well past is next year's.
            if year.is_none() && t < now - 86_400 {
                t = to_utc(at_local(this_year + 1, m, d));
            }
            t
        }
        _ => {
            // A time of day alone: the next time the clock shows it (this
            // very minute included).
            let midnight = local_now - local_now.rem_euclid(86_400);
            let mut t = to_utc(midnight + clock);
            if t + 60 <= now {
                t = to_utc(midnight + 86_400 + clock);
            }
            t
        }
    };
    Some(minute_start + 60)
}

/// Seconds after midnight of `4pm`, `6:44am`, `7:49 AM`, `14:20`.
fn parse_clock(words: &[&str]) -> Option<i64> {
    for (i, w) in words.iter().enumerate() {
        let (num, mut half) = match w.strip_suffix("am").or_else(|| w.strip_suffix("pm")) {
            Some(n) => (n, Some(w.ends_with("pm"))),
            None => (*w, None),
        };
        if half.is_none() {
            half = match words.get(i + 1) {
                Some(&"am") => Some(false),
                Some(&"pm") => Some(true),
                _ => None,
            };
        }
        let (h, m) = match num.split_once(':') {
            Some((h, m)) => (h, m),
            None if half.is_some() => (num, "0"),
            None => continue,
        };
        let (Ok(h), Ok(m)) = (h.parse::<i64>(), m.parse::<i64>()) else {
            continue;
        };
        if m > 59 {
            continue;
        }
        let h = match half {
            Some(pm) if (1..=12).contains(&h) => h % 12 + if pm { 12 } else { 0 },
            None if h <= 23 => h,
            _ => continue,
        };
        return Some(h * 3600 + m * 60);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T05:47:00Z, a Sunday.
    const NOW: i64 = 1_796_536_020;

    fn utc(text: &str) -> Option<String> {
        reset_time(text, NOW, &|_| 0).map(|t| crate::time::iso_seconds(t as u64 * 1000))
    }

    fn berlin(text: &str) -> Option<String> {
        reset_time(text, NOW, &|_| 3600).map(|t| crate::time::iso_seconds(t as u64 * 1000))
    }

    #[test]
    fn claudes_forms_read_in_the_zone_it_names() {
        let s = |t: &str| Some(t.to_string());
        assert_eq!(
            utc("You've hit your session limit · resets 6:44am (UTC)"),
            s("2026-12-06T06:45:00Z")
        );
        // Earlier than now today: tomorrow.
        assert_eq!(
            utc("You've hit your session limit · resets 4am (UTC)"),
            s("2026-12-07T04:01:00Z")
        );
        assert_eq!(
            berlin("You've hit your session limit · resets 4:06pm (Europe/Berlin)"),
            s("2026-12-06T15:07:00Z")
        );
        assert_eq!(
            berlin("You've hit your weekly limit · resets Dec 8, 2:20pm (Europe/Berlin)"),
            s("2026-12-08T13:21:00Z")
        );
        assert_eq!(
            berlin("You've hit your usage limit · resets Jan 3, 2027, 4pm (Europe/Berlin)"),
            s("2027-01-03T15:01:00Z")
        );
        // UTC is UTC, whatever our own zone.
        assert_eq!(
            berlin("You've hit your session limit · resets 6:44am (UTC)"),
            s("2026-12-06T06:45:00Z")
        );
    }

    #[test]
    fn codexs_forms_read_in_local_time() {
        let s = |t: &str| Some(t.to_string());
        assert_eq!(
            utc(
                "You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage to purchase more credits or try again at 7:49 AM."
            ),
            s("2026-12-06T07:50:00Z")
        );
        assert_eq!(
            berlin(
                "You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage to purchase more credits or try again at Dec 8th, 2026 2:20 PM."
            ),
            s("2026-12-08T13:21:00Z")
        );
        assert_eq!(
            utc("You’ve hit your usage limit. Try again at 12:05 AM."),
            s("2026-12-07T00:06:00Z")
        );
    }

    #[test]
    fn this_minute_is_today_and_a_minute_past_is_tomorrow() {
        let s = |t: &str| Some(t.to_string());
        // NOW is 05:47:00.
        assert_eq!(utc("try again at 5:47 AM."), s("2026-12-06T05:48:00Z"));
        assert_eq!(utc("try again at 5:46 AM."), s("2026-12-07T05:47:00Z"));
    }

    #[test]
    fn words_without_a_time_say_nothing() {
        for text in [
            "You’ve hit your usage limit. Upgrade to Pro or try again later.",
            "Quota exceeded. Check your plan and billing details.",
            "resets soon",
            "try again at 25:99",
            "",
        ] {
            assert_eq!(utc(text), None, "{text}");
        }
    }
}
