//! Durations on command lines and in config files: `500ms`, `90s`, `10m`, `24h`, `7d`, or a
//! bare number of seconds.

use std::time::Duration;

use anyhow::{bail, Context};

/// Parses a duration for `--flag`.
pub fn parse(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let value: u64 = number.parse().with_context(|| {
        format!("--{flag} {text:?} is not a duration (like 500ms, 90s, 10m, 24h, 7d)")
    })?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => bail!("--{flag} {text:?}: unknown unit {other:?} (ms, s, m, h or d)"),
    };
    let ms = value
        .checked_mul(unit_ms)
        .with_context(|| format!("--{flag} {text:?} is too long"))?;
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds_parse_and_nonsense_is_refused() {
        assert_eq!(parse("d", "500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("d", "90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("d", "90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("d", "10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("d", "24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("d", "7d").unwrap(), Duration::from_secs(7 * 86_400));
        for bad in ["", "m", "1.5h", "10 weeks", "-1s", "99999999999999999999d"] {
            assert!(parse("d", bad).is_err(), "{bad:?}");
        }
    }
}
