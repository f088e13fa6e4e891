//! Civil time without a clock.
//!
//! The ledger is a deterministic state machine: it is handed timestamps in
//! its commands and never reads a clock, so every replica computes the same
//! SMS text, receipt prefix and daily-limit day. All times are East Africa
//! Time (UTC+3, no daylight saving), the only zone the platform serves.

/// East Africa Time's offset from UTC in milliseconds.
pub const EAT_OFFSET_MS: i64 = 3 * 3_600_000;

/// Milliseconds in a civil day.
const MS_PER_DAY: u64 = 86_400_000;
/// Milliseconds in a minute.
const MS_PER_MINUTE: u64 = 60_000;

/// A calendar date and wall-clock minute in EAT.
///
/// Fields are public so tests and the receipt encoder can build one; values
/// produced by [`CivilTime::from_unix_ms`] are always valid.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CivilTime {
    /// Proleptic Gregorian year, e.g. 2022.
    pub year: i32,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
}

impl CivilTime {
    /// The EAT date and minute of a Unix timestamp in milliseconds.
    pub fn from_unix_ms(unix_ms: u64) -> CivilTime {
        let local_ms = eat_ms(unix_ms);
        let days = local_ms / MS_PER_DAY;
        let minute_of_day = (local_ms % MS_PER_DAY) / MS_PER_MINUTE;
        // u64 milliseconds span under 6 * 10^8 years, so `days` fits i64 and
        // the year fits i32.
        let (year, month, day) = civil_from_days(days as i64);
        CivilTime {
            year: year as i32,
            month: month as u8,
            day: day as u8,
            hour: (minute_of_day / 60) as u8,
            minute: (minute_of_day % 60) as u8,
        }
    }

    /// The Unix timestamp in milliseconds of this EAT minute, or `None` if a
    /// field is out of range (including a day past the month's end) or the
    /// time is before the epoch. The inverse of [`CivilTime::from_unix_ms`]
    /// for whole minutes; lets tests and simulations name instants as people
    /// read them.
    pub fn to_unix_ms(&self) -> Option<u64> {
        if !(1..=12).contains(&self.month)
            || self.day < 1
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
        {
            return None;
        }
        let days = days_from_civil(i64::from(self.year), self.month.into(), self.day.into());
        let minutes = days
            .checked_mul(24 * 60)?
            .checked_add(i64::from(self.hour) * 60 + i64::from(self.minute))?;
        let local_ms = minutes.checked_mul(MS_PER_MINUTE as i64)?;
        u64::try_from(local_ms.checked_sub(EAT_OFFSET_MS)?).ok()
    }

    /// `"3/3/22"`: day/month/two-digit year without zero padding on day and
    /// month, as M-Pesa SMS print it.
    pub fn sms_date(&self) -> String {
        format!(
            "{}/{}/{:02}",
            self.day,
            self.month,
            self.year.rem_euclid(100)
        )
    }

    /// `"5:28 PM"`: twelve-hour clock as in SMS; midnight is `"12:05 AM"`,
    /// noon `"12:00 PM"`.
    pub fn sms_time(&self) -> String {
        let meridiem = if self.hour < 12 { "AM" } else { "PM" };
        let hour = match self.hour % 12 {
            0 => 12,
            h => h,
        };
        format!("{hour}:{:02} {meridiem}", self.minute)
    }
}

/// Day index (days since 1970-01-01 in EAT): the key for daily limits, so a
/// customer's day resets at local midnight (21:00 UTC). Saturates at
/// `u32::MAX`, some eleven million years out.
pub fn eat_day(unix_ms: u64) -> u32 {
    u32::try_from(eat_ms(unix_ms) / MS_PER_DAY).unwrap_or(u32::MAX)
}

/// Milliseconds since the epoch on an EAT wall clock; saturating, so the
/// largest timestamps cannot overflow.
fn eat_ms(unix_ms: u64) -> u64 {
    unix_ms.saturating_add(EAT_OFFSET_MS.unsigned_abs())
}

/// Year, month (1..=12) and day (1..=31) of a day count since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`: shift the epoch to 0000-03-01 so the
/// leap day is the last day of the (March-based) year, split into 400-year
/// eras of 146,097 days, then into year-of-era and day-of-year, and read the
/// month from a linear formula over the March-based months.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a valid date: Hinnant's `days_from_civil`, the
/// inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400); // [0, 399]
    let mp = if month > 2 { month - 3 } else { month + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Days in `month` of `year` in the proleptic Gregorian calendar.
fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR_MS: u64 = 3_600_000;

    fn civil(year: i32, month: u8, day: u8, hour: u8, minute: u8) -> CivilTime {
        CivilTime {
            year,
            month,
            day,
            hour,
            minute,
        }
    }

    #[test]
    fn epoch_is_three_in_the_morning() {
        assert_eq!(CivilTime::from_unix_ms(0), civil(1970, 1, 1, 3, 0));
        assert_eq!(eat_day(0), 0);
    }

    #[test]
    fn known_sms_instant() {
        // 2022-03-03 14:28 UTC = 17:28 EAT.
        let t = CivilTime::from_unix_ms(1_646_317_680_000);
        assert_eq!(t, civil(2022, 3, 3, 17, 28));
        assert_eq!(t.sms_date(), "3/3/22");
        assert_eq!(t.sms_time(), "5:28 PM");
    }

    #[test]
    fn day_boundary_is_21_utc() {
        // 2022-03-03 21:00 UTC is 2022-03-04 00:00 EAT.
        let midnight = 1_646_341_200_000;
        let before = CivilTime::from_unix_ms(midnight - 1);
        assert_eq!(before, civil(2022, 3, 3, 23, 59));
        assert_eq!(CivilTime::from_unix_ms(midnight), civil(2022, 3, 4, 0, 0));
        assert_eq!(eat_day(midnight) - eat_day(midnight - 1), 1);
        assert_eq!(eat_day(midnight), eat_day(midnight + 24 * HOUR_MS - 1));
        assert_eq!(
            u64::from(eat_day(midnight)) * MS_PER_DAY,
            midnight + 3 * HOUR_MS
        );
    }

    #[test]
    fn leap_days_and_century_years() {
        // 2024-02-29 12:00 EAT = 09:00 UTC.
        let leap = CivilTime::from_unix_ms(1_709_197_200_000);
        assert_eq!(leap, civil(2024, 2, 29, 12, 0));
        assert_eq!(leap.sms_date(), "29/2/24");
        assert_eq!(
            CivilTime::from_unix_ms(1_709_197_200_000 + 24 * HOUR_MS),
            civil(2024, 3, 1, 12, 0)
        );
        // 2000-02-29 exists (divisible by 400); 2000-01-01 00:00 EAT.
        assert_eq!(
            CivilTime::from_unix_ms(946_674_000_000),
            civil(2000, 1, 1, 0, 0)
        );
        assert_eq!(
            CivilTime::from_unix_ms(946_674_000_000).sms_date(),
            "1/1/00"
        );
        assert_eq!(civil(2000, 2, 29, 0, 0).to_unix_ms(), Some(951_771_600_000));
        assert_eq!(civil(2100, 2, 29, 0, 0).to_unix_ms(), None);
        assert_eq!(civil(2023, 2, 29, 0, 0).to_unix_ms(), None);
        // 2023-12-31 23:59 EAT rolls into 2024.
        let eve = civil(2023, 12, 31, 23, 59).to_unix_ms().unwrap();
        assert_eq!(
            CivilTime::from_unix_ms(eve + 60_000),
            civil(2024, 1, 1, 0, 0)
        );
    }

    #[test]
    fn twelve_hour_clock() {
        assert_eq!(civil(2022, 1, 1, 0, 5).sms_time(), "12:05 AM");
        assert_eq!(civil(2022, 1, 1, 1, 0).sms_time(), "1:00 AM");
        assert_eq!(civil(2022, 1, 1, 11, 59).sms_time(), "11:59 AM");
        assert_eq!(civil(2022, 1, 1, 12, 0).sms_time(), "12:00 PM");
        assert_eq!(civil(2022, 1, 1, 13, 7).sms_time(), "1:07 PM");
        assert_eq!(civil(2022, 1, 1, 23, 59).sms_time(), "11:59 PM");
        assert_eq!(civil(2022, 12, 25, 8, 0).sms_date(), "25/12/22");
        assert_eq!(civil(2105, 1, 9, 8, 0).sms_date(), "9/1/05");
    }

    #[test]
    fn invalid_fields_have_no_timestamp() {
        assert_eq!(civil(2022, 0, 1, 0, 0).to_unix_ms(), None);
        assert_eq!(civil(2022, 13, 1, 0, 0).to_unix_ms(), None);
        assert_eq!(civil(2022, 4, 31, 0, 0).to_unix_ms(), None);
        assert_eq!(civil(2022, 4, 0, 0, 0).to_unix_ms(), None);
        assert_eq!(civil(2022, 4, 1, 24, 0).to_unix_ms(), None);
        assert_eq!(civil(2022, 4, 1, 0, 60).to_unix_ms(), None);
        // 1970-01-01 02:59 EAT is before the epoch.
        assert_eq!(civil(1970, 1, 1, 2, 59).to_unix_ms(), None);
        assert_eq!(civil(1970, 1, 1, 3, 0).to_unix_ms(), Some(0));
    }

    #[test]
    fn extreme_timestamps_do_not_panic() {
        let t = CivilTime::from_unix_ms(u64::MAX);
        assert!(t.year > 500_000_000);
        assert_eq!(eat_day(u64::MAX), u32::MAX);
    }

    proptest! {
        #[test]
        fn round_trips_through_civil_fields(minutes in 180u64..20_000_000_000) {
            let ms = minutes * 60_000 - 3 * HOUR_MS;
            let t = CivilTime::from_unix_ms(ms);
            prop_assert_eq!(t.to_unix_ms(), Some(ms));
            prop_assert!(t.day >= 1 && t.day <= days_in_month(t.year, t.month));
        }

        #[test]
        fn day_index_matches_calendar_days(ms in 0u64..5_000_000_000_000) {
            let t = CivilTime::from_unix_ms(ms);
            let day = days_from_civil(t.year.into(), t.month.into(), t.day.into());
            prop_assert_eq!(i64::from(eat_day(ms)), day);
        }
    }
}
