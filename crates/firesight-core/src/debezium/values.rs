//! A column's value as plain JSON, decoded by its Kafka Connect schema: Debezium writes a
//! `date` as days since the epoch, a `timestamp` as milli-, micro- or nanoseconds, a `time` as
//! the same units since midnight, a `numeric` as a scaled big-endian integer in base64. Without
//! a schema a value passes as it is, except a variable-scale decimal (`{scale, value}`), which
//! describes itself.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::{Map, Number, Value as Json};

use crate::codec::Refusal;
use crate::event::FieldError;

/// Every column of `row` as plain JSON; `schema` is the row's struct schema, if it came with
/// one. `exact` keeps a decimal as its exact text (a key), instead of a number.
pub(super) fn normalise_row(
    row: Map<String, Json>,
    schema: Option<&Json>,
    exact: bool,
) -> Result<Map<String, Json>, Refusal> {
    let columns: HashMap<&str, &Json> = schema
        .and_then(|s| s.get("fields"))
        .and_then(Json::as_array)
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| f.get("field").and_then(Json::as_str).map(|name| (name, f)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Map::with_capacity(row.len());
    for (name, value) in row {
        let column_schema = columns.get(name.as_str()).copied();
        let value = normalise(&name, value, column_schema, exact).map_err(Refusal::Field)?;
        out.insert(name, value);
    }
    Ok(out)
}

/// One column's value as plain JSON.
fn normalise(
    name: &str,
    value: Json,
    schema: Option<&Json>,
    exact: bool,
) -> Result<Json, FieldError> {
    if value.is_null() {
        return Ok(value);
    }
    let bad = |what: &str| FieldError::new(1, name, format!("{value} is not {what}"));
    let logical = schema.and_then(|s| s.get("name")).and_then(Json::as_str);
    let Some(logical) = logical else {
        // A variable-scale decimal describes itself; anything else shaped alike (a JSON column
        // that happens to hold `scale` and `value`) that does not decode stays as it is.
        return Ok(match &value {
            Json::Object(map) if map.len() == 2 && map.contains_key("scale") => {
                variable_decimal(name, map, exact).unwrap_or(value)
            }
            _ => value,
        });
    };
    let integer = value.as_i64();
    Ok(match logical {
        "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date" => {
            let days = integer.ok_or_else(|| bad("a day count"))?;
            Json::String(day(days).ok_or_else(|| bad("a day within chrono's range"))?)
        }
        "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp" => {
            instant(integer, 1_000_000).ok_or_else(|| bad("milliseconds since the epoch"))?
        }
        "io.debezium.time.MicroTimestamp" => {
            instant(integer, 1_000).ok_or_else(|| bad("microseconds since the epoch"))?
        }
        "io.debezium.time.NanoTimestamp" => {
            instant(integer, 1).ok_or_else(|| bad("nanoseconds since the epoch"))?
        }
        "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time" => {
            clock(integer, 1_000_000).ok_or_else(|| bad("milliseconds since midnight"))?
        }
        "io.debezium.time.MicroTime" => {
            clock(integer, 1_000).ok_or_else(|| bad("microseconds since midnight"))?
        }
        "io.debezium.time.NanoTime" => {
            clock(integer, 1).ok_or_else(|| bad("nanoseconds since midnight"))?
        }
        "org.apache.kafka.connect.data.Decimal" => match &value {
            Json::String(text) => {
                let scale = schema
                    .and_then(|s| s.get("parameters"))
                    .and_then(|p| p.get("scale"))
                    .and_then(|s| match s {
                        Json::String(s) => s.parse::<u32>().ok(),
                        other => other.as_u64().and_then(|n| u32::try_from(n).ok()),
                    })
                    .ok_or_else(|| {
                        FieldError::new(1, name, "a Decimal column whose schema gives no scale")
                    })?;
                decimal(name, text, scale, exact)?
            }
            // decimal.handling.mode = double or string: already a number or its text.
            _ => value,
        },
        "io.debezium.data.VariableScaleDecimal" => match &value {
            Json::Object(map) => variable_decimal(name, map, exact)?,
            _ => value,
        },
        _ => value,
    })
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
fn day(days: i64) -> Option<String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let date = epoch.checked_add_signed(chrono::TimeDelta::try_days(days)?)?;
    Some(date.format("%Y-%m-%d").to_string())
}

/// RFC 3339 (UTC) of a count of units since the epoch, `nanos_per_unit` nanoseconds each.
fn instant(count: Option<i64>, nanos_per_unit: i64) -> Option<Json> {
    let count = count?;
    let seconds = count.div_euclid(1_000_000_000 / nanos_per_unit);
    let rest = count.rem_euclid(1_000_000_000 / nanos_per_unit) * nanos_per_unit;
    let at = DateTime::<Utc>::from_timestamp(seconds, u32::try_from(rest).ok()?)?;
    Some(Json::String(
        at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    ))
}

/// `HH:MM:SS` of a count of units since midnight, `nanos_per_unit` nanoseconds each.
fn clock(count: Option<i64>, nanos_per_unit: i64) -> Option<Json> {
    let count = count?;
    let per_second = 1_000_000_000 / nanos_per_unit;
    let seconds = u32::try_from(count.checked_div(per_second)?).ok()?;
    let time = NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0)?;
    (count >= 0).then(|| Json::String(time.format("%H:%M:%S").to_string()))
}

/// A variable-scale decimal, `{scale, value}` with the unscaled value in base64.
fn variable_decimal(name: &str, map: &Map<String, Json>, exact: bool) -> Result<Json, FieldError> {
    let scale = map
        .get("scale")
        .and_then(Json::as_u64)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| FieldError::new(1, name, "a variable-scale decimal without a scale"))?;
    let Some(Json::String(text)) = map.get("value") else {
        return Err(FieldError::new(
            1,
            name,
            "a variable-scale decimal without a base64 value",
        ));
    };
    decimal(name, text, scale, exact)
}

/// A Connect decimal: a two's-complement big-endian integer (base64) scaled by `10^-scale`: a
/// JSON integer when the scale is 0 and it fits, else a number, or with `exact` its text.
fn decimal(name: &str, base64: &str, scale: u32, exact: bool) -> Result<Json, FieldError> {
    let bad = |why: &str| FieldError::new(1, name, format!("decimal `{base64}` {why}"));
    let bytes = decode_base64(base64).ok_or_else(|| bad("is not base64"))?;
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(bad("is not 1 to 16 bytes long"));
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut unscaled: i128 = if negative { -1 } else { 0 };
    for byte in &bytes {
        unscaled = (unscaled << 8) | i128::from(*byte);
    }
    if scale > 38 {
        return Err(bad("has a scale over 38"));
    }
    let text = if scale == 0 {
        unscaled.to_string()
    } else {
        let digits = unscaled.unsigned_abs().to_string();
        let scale = scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        format!("{}{whole}.{fraction}", if unscaled < 0 { "-" } else { "" })
    };
    if exact {
        return Ok(Json::String(text));
    }
    if scale == 0
        && let Ok(whole) = i64::try_from(unscaled)
    {
        return Ok(Json::from(whole));
    }
    let number: f64 = text.parse().map_err(|_| bad("does not make a number"))?;
    Number::from_f64(number)
        .map(Json::Number)
        .ok_or_else(|| bad("is not finite"))
}

/// Standard base64 with or without padding; `None` on any other character.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// RFC 3339 (UTC) of an epoch count whose unit is read from its size: seconds, milli-, micro-
/// or nanoseconds put an instant of 1990–2200 in ranges that do not overlap. Used where a row
/// came without a schema; `None` outside all four.
pub(super) fn epoch_by_size(count: i64) -> Option<Json> {
    const SECONDS_1990: i64 = 631_152_000;
    const SECONDS_2200: i64 = 7_258_118_400;
    let within = |per_second: i64| {
        (SECONDS_1990.saturating_mul(per_second)..=SECONDS_2200.saturating_mul(per_second))
            .contains(&count)
    };
    if within(1) {
        instant(Some(count), 1_000_000_000)
    } else if within(1_000) {
        instant(Some(count), 1_000_000)
    } else if within(1_000_000) {
        instant(Some(count), 1_000)
    } else if within(1_000_000_000) {
        instant(Some(count), 1)
    } else {
        None
    }
}

/// A day count since the epoch as `YYYY-MM-DD` (a `date` column without its schema).
pub(super) fn day_json(days: i64) -> Option<Json> {
    day(days).map(Json::String)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn debezium_time_types_become_text() {
        let schema = |name: &str| json!({"type": "int64", "name": name});
        let cases = [
            ("io.debezium.time.Date", json!(18_262), json!("2020-01-01")),
            (
                "io.debezium.time.MicroTimestamp",
                json!(1_577_880_000_000_000_i64),
                json!("2020-01-01T12:00:00Z"),
            ),
            (
                "io.debezium.time.Timestamp",
                json!(1_577_880_000_500_i64),
                json!("2020-01-01T12:00:00.500Z"),
            ),
            (
                "io.debezium.time.NanoTimestamp",
                json!(-1_i64),
                json!("1969-12-31T23:59:59.999999999Z"),
            ),
            (
                "io.debezium.time.MicroTime",
                json!(48_600_000_000_i64),
                json!("13:30:00"),
            ),
            (
                "org.apache.kafka.connect.data.Time",
                json!(48_600_000),
                json!("13:30:00"),
            ),
        ];
        for (name, value, expected) in cases {
            assert_eq!(
                normalise("c", value, Some(&schema(name)), false).expect(name),
                expected,
                "{name}"
            );
        }
        let refused = normalise(
            "c",
            json!(-5),
            Some(&schema("io.debezium.time.MicroTime")),
            false,
        );
        assert!(refused.is_err());
        let refused = normalise(
            "c",
            json!(i64::MAX),
            Some(&schema("io.debezium.time.Date")),
            false,
        );
        assert_eq!(refused.expect_err("out of range").field, "c");
    }

    #[test]
    fn decimals_decode_by_their_scale() {
        let schema = json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "2", "connect.decimal.precision": "6"}});
        // 31234 = 0x7A02 → 312.34; -5 = 0xFB → -0.05.
        assert_eq!(
            normalise("frp", json!("egI="), Some(&schema), false).expect("ok"),
            json!(312.34)
        );
        assert_eq!(
            normalise("frp", json!("+w=="), Some(&schema), false).expect("ok"),
            json!(-0.05)
        );
        let variable = json!({"scale": 1, "value": "AQ=="});
        assert_eq!(
            normalise("frp", variable, None, false).expect("ok"),
            json!(0.1)
        );
        let error = normalise("frp", json!("not*base64"), Some(&schema), false).expect_err("bad");
        assert!(error.reason.contains("not base64"), "{}", error.reason);
        let long = json!("AAAAAAAAAAAAAAAAAAAAAAAA");
        assert!(normalise("frp", long, Some(&schema), false).is_err());
    }

    #[test]
    fn an_epoch_without_a_schema_is_read_by_its_size() {
        let expected = json!("2020-01-01T12:00:00Z");
        for count in [
            1_577_880_000_i64,
            1_577_880_000_000,
            1_577_880_000_000_000,
            1_577_880_000_000_000_000,
        ] {
            assert_eq!(epoch_by_size(count), Some(expected.clone()), "{count}");
        }
        assert_eq!(epoch_by_size(12), None);
        assert_eq!(epoch_by_size(i64::MAX), None);
    }
}
