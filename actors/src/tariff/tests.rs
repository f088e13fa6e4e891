//! Tariff tests: the shipped Kenyan values at every band edge, every parse
//! error with its line, and serde validation.

use super::*;
use proptest::prelude::*;

/// Published send-money fees (KES): an independent copy of the shipped file.
const SEND_MONEY: &[(i64, i64, i64)] = &[
    (1, 49, 0),
    (50, 100, 0),
    (101, 500, 7),
    (501, 1000, 13),
    (1001, 1500, 23),
    (1501, 2500, 33),
    (2501, 3500, 53),
    (3501, 5000, 57),
    (5001, 7500, 78),
    (7501, 10000, 90),
    (10001, 15000, 100),
    (15001, 20000, 105),
    (20001, 35000, 108),
    (35001, 50000, 108),
    (50001, 250000, 108),
];

/// Published agent withdrawal fees (KES).
const WITHDRAWAL: &[(i64, i64, i64)] = &[
    (50, 100, 11),
    (101, 500, 29),
    (501, 1000, 29),
    (1001, 1500, 29),
    (1501, 2500, 29),
    (2501, 3500, 52),
    (3501, 5000, 69),
    (5001, 7500, 87),
    (7501, 10000, 115),
    (10001, 15000, 167),
    (15001, 20000, 185),
    (20001, 35000, 197),
    (35001, 50000, 278),
    (50001, 250000, 309),
];

/// Our documented default cash-in commission (KES).
const CASH_IN: &[(i64, i64, i64)] = &[
    (1, 49, 0),
    (50, 100, 2),
    (101, 500, 5),
    (501, 1000, 10),
    (1001, 2500, 15),
    (2501, 5000, 25),
    (5001, 10000, 40),
    (10001, 20000, 60),
    (20001, 35000, 80),
    (35001, 50000, 100),
    (50001, 250000, 120),
];

/// Our documented default cash-out commission (KES), on the withdrawal bands.
const CASH_OUT: [i64; 14] = [7, 17, 17, 17, 17, 31, 41, 52, 69, 100, 111, 118, 167, 185];

fn kes(shillings: i64) -> Money {
    Money::from_shillings(shillings)
}

fn cents(cents: i64) -> Money {
    Money::from_cents(cents)
}

/// `amount` moved by `delta` cents.
fn shift(amount: Money, delta: i64) -> Money {
    cents(amount.cents() + delta)
}

/// Checks `lookup` at every edge of `expected`: from, from - 0.01, to,
/// to + 0.99 and to + 1.00 (the next band, or nothing after the last).
fn assert_edges(table: &BandTable, expected: &[(i64, i64, i64)]) {
    for (index, &(from, to, value)) in expected.iter().enumerate() {
        let value = Some(kes(value));
        let prev = index.checked_sub(1).map(|i| kes(expected[i].2));
        let next = expected.get(index + 1).map(|band| kes(band.2));
        assert_eq!(table.lookup(kes(from)), value, "at {from}");
        assert_eq!(table.lookup(shift(kes(from), -1)), prev, "below {from}");
        assert_eq!(table.lookup(kes(to)), value, "at {to}");
        assert_eq!(table.lookup(shift(kes(to), 99)), value, "at {to}.99");
        assert_eq!(table.lookup(kes(to + 1)), next, "at {}", to + 1);
    }
}

#[test]
fn shipped_file_parses_to_the_published_values() {
    let t = Tariffs::parse(KENYA_DEFAULT).unwrap();
    assert_eq!(t, Tariffs::kenya_default());
    let rows = |table: &BandTable| -> Vec<(i64, i64, i64)> {
        let shillings = |m: Money| m.cents() / 100;
        table
            .bands()
            .iter()
            .map(|b| (shillings(b.from), shillings(b.to), shillings(b.value)))
            .collect()
    };
    assert_eq!(rows(&t.send_money), SEND_MONEY);
    assert_eq!(rows(&t.withdrawal), WITHDRAWAL);
    assert_eq!(rows(&t.commission_cash_in), CASH_IN);
    let cash_out: Vec<_> = WITHDRAWAL
        .iter()
        .zip(CASH_OUT)
        .map(|(w, c)| (w.0, w.1, c))
        .collect();
    assert_eq!(rows(&t.commission_cash_out), cash_out);
    assert_eq!(
        t.limits,
        Limits {
            per_transaction: kes(250_000),
            daily: kes(500_000),
            max_balance: kes(500_000),
            min_withdrawal: kes(50),
            min_transfer: kes(1),
            float_per_transaction: kes(10_000_000),
            max_float_balance: kes(1_000_000_000),
        }
    );
}

#[test]
fn send_money_at_every_band_edge() {
    let t = Tariffs::kenya_default();
    assert_edges(&t.send_money, SEND_MONEY);
    assert_eq!(t.send_fee(cents(99)), None);
    assert_eq!(t.send_fee(Money::ZERO), None);
    assert_eq!(t.send_fee(cents(-100)), None);
    assert_eq!(t.send_fee(kes(1)), Some(Money::ZERO));
    assert_eq!(t.send_fee(cents(10_050)), Some(Money::ZERO));
    assert_eq!(t.send_fee(kes(101)), Some(kes(7)));
    assert_eq!(t.send_fee(cents(25_000_099)), Some(kes(108)));
    assert_eq!(t.send_fee(kes(250_001)), None);
    assert_eq!(t.send_fee(Money::MAX), None);
}

#[test]
fn withdrawal_at_every_band_edge() {
    let t = Tariffs::kenya_default();
    assert_edges(&t.withdrawal, WITHDRAWAL);
    assert_eq!(t.withdrawal_fee(cents(4_999)), None);
    assert_eq!(t.withdrawal_fee(kes(50)), Some(kes(11)));
    assert_eq!(t.withdrawal_fee(cents(10_099)), Some(kes(11)));
    assert_eq!(t.withdrawal_fee(kes(101)), Some(kes(29)));
    assert_eq!(t.withdrawal_fee(cents(25_000_099)), Some(kes(309)));
    assert_eq!(t.withdrawal_fee(kes(250_001)), None);
}

#[test]
fn commissions_at_every_band_edge() {
    let t = Tariffs::kenya_default();
    assert_edges(&t.commission_cash_in, CASH_IN);
    let cash_out: Vec<_> = WITHDRAWAL
        .iter()
        .zip(CASH_OUT)
        .map(|(w, c)| (w.0, w.1, c))
        .collect();
    assert_edges(&t.commission_cash_out, &cash_out);
    assert_eq!(t.cash_in_commission(cents(99)), Money::ZERO);
    assert_eq!(t.cash_in_commission(kes(50)), kes(2));
    assert_eq!(t.cash_in_commission(cents(25_000_099)), kes(120));
    assert_eq!(t.cash_in_commission(kes(250_001)), Money::ZERO);
    assert_eq!(t.cash_out_commission(cents(4_999)), Money::ZERO);
    assert_eq!(t.cash_out_commission(kes(50)), kes(7));
    assert_eq!(t.cash_out_commission(cents(25_000_099)), kes(185));
    assert_eq!(t.cash_out_commission(kes(250_001)), Money::ZERO);
    for band in t.withdrawal.bands() {
        for amount in [band.from, band.upper()] {
            assert!(t.cash_out_commission(amount) <= t.withdrawal_fee(amount).unwrap());
        }
    }
}

#[test]
fn min_and_max() {
    let t = Tariffs::kenya_default();
    assert_eq!(t.send_money.min(), Some(kes(1)));
    assert_eq!(t.send_money.max(), Some(cents(25_000_099)));
    assert_eq!(t.withdrawal.min(), Some(kes(50)));
    assert_eq!(t.withdrawal.max(), Some(cents(25_000_099)));
    let empty = BandTable::new(Vec::new()).unwrap();
    assert_eq!(
        (empty.min(), empty.max(), empty.lookup(kes(1))),
        (None, None, None)
    );
}

/// A small valid file; tests replace or append lines to break it.
const MINIMAL: [&str; 13] = [
    "# minimal tariffs",                   // 1
    "band send_money 1 100 0",             // 2
    "band send_money 101 500 7",           // 3
    "band withdrawal 50 100 11",           // 4
    "band withdrawal 101 500 29",          // 5
    "band commission_cash_in 1 500 5",     // 6
    "band commission_cash_out 50 100 7",   // 7
    "band commission_cash_out 101 500 17", // 8
    "limit per_transaction 250000",        // 9
    "limit daily 500000",                  // 10
    "limit max_balance 500000",            // 11
    "limit min_withdrawal 50",             // 12
    "limit min_transfer 1",                // 13
];

/// `MINIMAL` with line `line` (1-based) replaced by `text` (a line past the
/// end is appended; `None` deletes the line).
fn edited(line: usize, text: Option<&str>) -> String {
    let mut lines: Vec<&str> = MINIMAL.to_vec();
    match (text, line <= lines.len()) {
        (Some(text), true) => lines[line - 1] = text,
        (Some(text), false) => lines.push(text),
        (None, _) => {
            lines.remove(line - 1);
        }
    }
    lines.join("\n")
}

/// Asserts that `text` fails on `line` with a message containing `needle`.
fn assert_line_error(text: &str, line: usize, needle: &str) {
    match Tariffs::parse(text) {
        Err(TariffError::Line { line: got, message }) => {
            assert_eq!(got, line, "{message}");
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected a line {line} error, got {other:?}"),
    }
}

#[test]
fn minimal_file_parses_with_comments_crlf_and_decimals() {
    assert!(Tariffs::parse(&MINIMAL.join("\n")).is_ok());
    let text = MINIMAL
        .join("\r\n")
        .replace("101 500 7", "101 500 7.50   # cents")
        + "\n\n   \n";
    let t = Tariffs::parse(&text).unwrap();
    assert_eq!(t.send_fee(kes(200)), Some(cents(750)));
}

#[test]
fn unknown_names() {
    assert_line_error(
        &edited(14, Some("band fees 1 2 3")),
        14,
        "unknown table \"fees\"",
    );
    assert_line_error(
        &edited(14, Some("limit weekly 5")),
        14,
        "unknown limit \"weekly\"",
    );
    assert_line_error(
        &edited(1, Some("tier send_money 1 2 3")),
        1,
        "unknown rule \"tier\"",
    );
}

#[test]
fn wrong_field_counts() {
    assert_line_error(&edited(3, Some("band send_money 101 500")), 3, "5 fields");
    assert_line_error(
        &edited(3, Some("band send_money 101 500 7 8")),
        3,
        "found 6",
    );
    assert_line_error(&edited(10, Some("limit daily")), 10, "3 fields");
    assert_line_error(&edited(10, Some("limit daily 5 6")), 10, "found 4");
}

#[test]
fn bad_numbers() {
    assert_line_error(
        &edited(3, Some("band send_money 101 5x0 7")),
        3,
        "bad to amount \"5x0\"",
    );
    assert_line_error(
        &edited(3, Some("band send_money 1e2 500 7")),
        3,
        "bad from amount",
    );
    assert_line_error(
        &edited(3, Some("band send_money 101 500 7.505")),
        3,
        "more than two decimal",
    );
    assert_line_error(&edited(3, Some("band send_money 101 500 -7")), 3, "sign");
    assert_line_error(
        &edited(10, Some("limit daily 5,00")),
        10,
        "bad limit amount",
    );
    assert_line_error(
        &edited(3, Some("band send_money 101.50 500 7")),
        3,
        "whole shillings",
    );
}

#[test]
fn band_sequence_errors() {
    assert_line_error(
        &edited(3, Some("band send_money 500 101 7")),
        3,
        "band 500–101: from is greater than to",
    );
    assert_line_error(
        &edited(5, Some("band withdrawal 90 200 29")),
        5,
        "band 90–200 overlaps the band on line 4 (50–100)",
    );
    assert_line_error(
        &edited(3, Some("band send_money 100 500 7")),
        3,
        "overlaps the band on line 2",
    );
    assert_line_error(
        &edited(3, Some("band send_money 102 500 7")),
        3,
        "band 102–500 leaves a gap after the band on line 2 (1–100)",
    );
    assert_line_error(
        &edited(14, Some("band send_money 1 100 0")),
        14,
        "starts before the band on line 3",
    );
    // Interleaved tables are fine; order is per table.
    let text = edited(14, Some("band send_money 501 1000 13"));
    assert_eq!(
        Tariffs::parse(&text).unwrap().send_fee(kes(1000)),
        Some(kes(13))
    );
}

#[test]
fn duplicate_and_missing() {
    assert_line_error(
        &edited(14, Some("limit daily 1")),
        14,
        "duplicate limit daily: already set on line 10",
    );
    match Tariffs::parse(&edited(6, None)) {
        Err(TariffError::Missing { what }) => assert_eq!(what, "band table commission_cash_in"),
        other => panic!("{other:?}"),
    }
    match Tariffs::parse(&edited(13, None)) {
        Err(e @ TariffError::Missing { .. }) => {
            assert_eq!(e.to_string(), "missing limit min_transfer")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cash_out_commission_never_exceeds_the_withdrawal_fee() {
    let text = edited(8, Some("band commission_cash_out 101 500 30"));
    assert_line_error(
        &text,
        8,
        "cash-out commission 30.00 exceeds the withdrawal fee 29.00 (line 5)",
    );
    assert_line_error(&text, 8, "at amount 101.00");
    // Equal is allowed.
    assert!(Tariffs::parse(&edited(8, Some("band commission_cash_out 101 500 29"))).is_ok());
    // A commission boundary that is not a withdrawal boundary is checked too:
    // 100.00 pays 17 commission but only an 11 fee.
    let mut lines = MINIMAL.to_vec();
    lines[6] = "band commission_cash_out 50 99 7";
    lines[7] = "band commission_cash_out 100 500 17";
    assert_line_error(
        &lines.join("\n"),
        8,
        "exceeds the withdrawal fee 11.00 (line 4) at amount 100.00",
    );
    // ...and a withdrawal boundary inside one commission band (the inserted
    // withdrawal line moves the commission bands to lines 8 and 9).
    lines[6] = "band commission_cash_out 50 300 11";
    lines[7] = "band commission_cash_out 301 500 17";
    lines[4] = "band withdrawal 101 200 10";
    lines.insert(5, "band withdrawal 201 500 29");
    assert_line_error(
        &lines.join("\n"),
        8,
        "exceeds the withdrawal fee 10.00 (line 5) at amount 101.00",
    );
}

#[test]
fn line_errors_display_their_line() {
    let err = Tariffs::parse(&edited(14, Some("limit daily 1"))).unwrap_err();
    assert!(err.to_string().starts_with("line 14: "), "{err}");
}

#[test]
fn load_reads_files_and_reports_io_errors() {
    let dir = std::env::temp_dir().join(format!("tuma-tariff-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tariffs.txt");
    std::fs::write(&path, KENYA_DEFAULT).unwrap();
    assert_eq!(Tariffs::load(&path).unwrap(), Tariffs::kenya_default());
    std::fs::remove_dir_all(&dir).unwrap();
    match Tariffs::load(&path) {
        Err(e @ TariffError::Io { .. }) => assert!(e.to_string().contains("tariffs.txt"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn band_tables_built_in_code_are_validated() {
    let band = |from, to, value| Band {
        from: kes(from),
        to: kes(to),
        value: kes(value),
    };
    assert!(BandTable::new(vec![band(1, 10, 0), band(11, 20, 1)]).is_ok());
    let err = |bands| match BandTable::new(bands) {
        Err(TariffError::Invalid { message }) => message,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        err(vec![band(1, 10, 0), band(12, 20, 1)]),
        "band 2: band 12–20 leaves a gap after band 1 (1–10)"
    );
    assert!(err(vec![band(1, 10, 0), band(5, 20, 1)]).contains("overlaps band 1"));
    assert!(err(vec![band(11, 20, 0), band(1, 10, 1)]).contains("starts before band 1"));
    assert!(err(vec![band(1, 10, -1)]).contains("negative"));
    assert!(err(vec![band(10, 1, 0)]).contains("from is greater than to"));
    assert!(err(vec![Band {
        from: cents(150),
        to: kes(10),
        value: kes(0)
    }])
    .contains("whole shillings"));
}

#[test]
fn serde_round_trips_and_validates() {
    let t = Tariffs::kenya_default();
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(serde_json::from_str::<Tariffs>(&json).unwrap(), t);
    let gap = json.replacen("\"from\":10100", "\"from\":10200", 1);
    assert_ne!(gap, json);
    let err = serde_json::from_str::<Tariffs>(&gap)
        .unwrap_err()
        .to_string();
    assert!(err.contains("leaves a gap"), "{err}");
    let split = json.find("commission_cash_out").unwrap();
    let greedy = format!(
        "{}{}",
        &json[..split],
        json[split..].replacen("\"value\":700}", "\"value\":5000}", 1)
    );
    assert_ne!(greedy, json);
    let err = serde_json::from_str::<Tariffs>(&greedy)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cash-out commission 50.00 exceeds the withdrawal fee 11.00"),
        "{err}"
    );
}

proptest! {
    #[test]
    fn every_amount_in_range_matches_exactly_one_band(
        table_index in 0usize..4,
        offset in 0i64..25_000_000,
    ) {
        let t = Tariffs::kenya_default();
        let table = [&t.send_money, &t.withdrawal, &t.commission_cash_in, &t.commission_cash_out][table_index];
        let (min, max) = (table.min().unwrap(), table.max().unwrap());
        let amount = cents(min.cents() + offset % (max.cents() - min.cents() + 1));
        let matching: Vec<&Band> = table.bands().iter().filter(|b| b.contains(amount)).collect();
        prop_assert_eq!(matching.len(), 1);
        prop_assert_eq!(table.lookup(amount), Some(matching[0].value));
    }

    #[test]
    fn amounts_outside_the_range_match_nothing(below in 1i64..5_000, above in 1i64..1_000_000_000) {
        let t = Tariffs::kenya_default();
        for table in [&t.send_money, &t.withdrawal] {
            prop_assert_eq!(table.lookup(cents(table.min().unwrap().cents() - below)), None);
            prop_assert_eq!(table.lookup(cents(table.max().unwrap().cents() + above)), None);
        }
    }

    #[test]
    fn generated_tables_parse_and_gaps_are_caught(
        widths in prop::collection::vec((1i64..1_000, 0i64..500), 1..12),
        gap in prop::option::of((0usize..12, 1i64..50)),
    ) {
        // Extend MINIMAL's send_money table (ending at 500) with generated
        // bands, optionally pushing one band's start to leave a gap.
        let mut lines: Vec<String> = MINIMAL.iter().map(|l| l.to_string()).collect();
        let mut from = 501;
        let mut expected = Vec::new();
        let mut gap_line = None;
        for (index, (width, value)) in widths.iter().enumerate() {
            let to = from + width - 1;
            let start = match gap {
                Some((at, by)) if at == index && *width > 1 => {
                    gap_line = Some(lines.len() + 1);
                    from + by.min(width - 1)
                }
                _ => from,
            };
            lines.push(format!("band send_money {start} {to} {value}"));
            expected.push((from, to, *value));
            from = to + 1;
        }
        let parsed = Tariffs::parse(&lines.join("\n"));
        match gap_line {
            Some(line) => {
                let message = parsed.unwrap_err().to_string();
                prop_assert!(message.starts_with(&format!("line {line}: ")), "{}", message);
                prop_assert!(message.contains("leaves a gap"), "{}", message);
            }
            None => {
                let t = parsed.unwrap();
                for (from, to, value) in expected {
                    prop_assert_eq!(t.send_fee(kes(from)), Some(kes(value)));
                    prop_assert_eq!(t.send_fee(shift(kes(to), 99)), Some(kes(value)));
                }
            }
        }
    }
}
