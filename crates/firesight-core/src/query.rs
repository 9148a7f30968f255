//! Query understanding: years, months, dates, counties, regions and sizes in a question become
//! filters. What was understood is returned with the answer, and `"understand": false` turns it off.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;
use serde::Serialize;

/// California's 58 counties.
const COUNTIES: [&str; 58] = [
    "Alameda",
    "Alpine",
    "Amador",
    "Butte",
    "Calaveras",
    "Colusa",
    "Contra Costa",
    "Del Norte",
    "El Dorado",
    "Fresno",
    "Glenn",
    "Humboldt",
    "Imperial",
    "Inyo",
    "Kern",
    "Kings",
    "Lake",
    "Lassen",
    "Los Angeles",
    "Madera",
    "Marin",
    "Mariposa",
    "Mendocino",
    "Merced",
    "Modoc",
    "Mono",
    "Monterey",
    "Napa",
    "Nevada",
    "Orange",
    "Placer",
    "Plumas",
    "Riverside",
    "Sacramento",
    "San Benito",
    "San Bernardino",
    "San Diego",
    "San Francisco",
    "San Joaquin",
    "San Luis Obispo",
    "San Mateo",
    "Santa Barbara",
    "Santa Clara",
    "Santa Cruz",
    "Shasta",
    "Sierra",
    "Siskiyou",
    "Solano",
    "Sonoma",
    "Stanislaus",
    "Sutter",
    "Tehama",
    "Trinity",
    "Tulare",
    "Tuolumne",
    "Ventura",
    "Yolo",
    "Yuba",
];

/// County names that are also ordinary words or other places: only "X County" counts.
const NEEDS_SUFFIX: [&str; 12] = [
    "Alpine", "Glenn", "Kings", "Lake", "Lassen", "Mono", "Nevada", "Orange", "Shasta", "Sierra",
    "Trinity", "Imperial",
];

/// Region words and the region name they select (see `render::REGIONS`).
const REGION_WORDS: [(&str, &str); 11] = [
    ("new south wales", "New South Wales"),
    ("nsw", "New South Wales"),
    ("victoria", "Victoria"),
    ("queensland", "Queensland"),
    ("tasmania", "Tasmania"),
    ("western australia", "Western Australia"),
    ("south australia", "South Australia"),
    ("northern territory", "Northern Territory"),
    ("australia", "Australia"),
    ("california", "California"),
    ("hawaii", "Hawaii"),
];

const MONTH_NAMES: [(&str, u32); 23] = [
    ("january", 1),
    ("jan", 1),
    ("february", 2),
    ("feb", 2),
    ("march", 3),
    ("april", 4),
    ("apr", 4),
    ("june", 6),
    ("jun", 6),
    ("july", 7),
    ("jul", 7),
    ("august", 8),
    ("aug", 8),
    ("september", 9),
    ("sept", 9),
    ("sep", 9),
    ("october", 10),
    ("oct", 10),
    ("november", 11),
    ("nov", 11),
    ("december", 12),
    ("dec", 12),
    ("mar", 3),
];

/// Filters read from the query text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Understood {
    /// Years mentioned; a document must fall in one of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub years: Vec<i32>,
    /// Months mentioned (1–12).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub months: Vec<u32>,
    /// A specific date; documents starting within 3 days of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub date: Option<NaiveDate>,
    /// California counties mentioned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub counties: Vec<String>,
    /// A state or country mentioned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// "over 100,000 acres".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_acres: Option<f64>,
    /// "under 500 acres".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_acres: Option<f64>,
}

impl Understood {
    /// True when nothing was read.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

static SIZE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(over|more than|larger than|bigger than|greater than|at least|above|exceeding|under|less than|smaller than|below|at most|fewer than)\s+(\d[\d,]*(?:\.\d+)?)\s*(k|thousand|million|m)?\s*(acres?|hectares?|ha)\b",
    )
    .unwrap_or_else(|e| unreachable!("size pattern: {e}"))
});
static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b").unwrap_or_else(|e| unreachable!("{e}"))
});
static US_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b").unwrap_or_else(|e| unreachable!("{e}"))
});
static WORD_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:([a-z]+)\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})|(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+),?\s+(\d{4}))\b")
        .unwrap_or_else(|e| unreachable!("{e}"))
});
static YEAR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(19[5-9]\d|20[0-4]\d)\b").unwrap_or_else(|e| unreachable!("{e}"))
});
static WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z]+").unwrap_or_else(|e| unreachable!("{e}")));

fn month_of(word: &str) -> Option<u32> {
    let w = word.to_ascii_lowercase();
    MONTH_NAMES
        .iter()
        .find(|(n, _)| *n == w)
        .map(|(_, m)| *m)
        .or_else(|| (w == "may").then_some(5))
}

/// Reads the filters a query states.
pub fn understand(query: &str) -> Understood {
    let mut u = Understood::default();
    let lower = query.to_ascii_lowercase();

    for c in SIZE.captures_iter(query) {
        let Ok(mut n) = c[2].replace(',', "").parse::<f64>() else {
            continue;
        };
        match c.get(3).map(|m| m.as_str().to_ascii_lowercase()).as_deref() {
            Some("k" | "thousand") => n *= 1_000.0,
            Some("million" | "m") => n *= 1_000_000.0,
            _ => {}
        }
        if c[4].to_ascii_lowercase().starts_with('h') {
            n *= 2.471_05;
        }
        let lower_bound = matches!(
            c[1].to_ascii_lowercase().as_str(),
            "over"
                | "more than"
                | "larger than"
                | "bigger than"
                | "greater than"
                | "at least"
                | "above"
                | "exceeding"
        );
        if lower_bound {
            u.min_acres = Some(n);
        } else {
            u.max_acres = Some(n);
        }
    }

    let date = ISO_DATE
        .captures(query)
        .and_then(|c| ymd(&c[1], &c[2], &c[3]))
        .or_else(|| {
            US_DATE
                .captures(query)
                .and_then(|c| ymd(&c[3], &c[1], &c[2]))
        })
        .or_else(|| {
            WORD_DATE.captures_iter(query).find_map(|c| {
                let (month, day, year) = match c.get(1) {
                    Some(m) => (m.as_str(), &c[2], &c[3]),
                    None => (c.get(5)?.as_str(), &c[4], &c[6]),
                };
                let month = month_of(month)?;
                NaiveDate::from_ymd_opt(year.parse().ok()?, month, day.parse().ok()?)
            })
        });
    if let Some(d) = date {
        u.date = Some(d);
    } else {
        for c in YEAR.captures_iter(query) {
            if let Ok(y) = c[1].parse::<i32>()
                && !u.years.contains(&y)
            {
                u.years.push(y);
            }
        }
        let words: Vec<&str> = WORD.find_iter(query).map(|m| m.as_str()).collect();
        for (i, w) in words.iter().enumerate() {
            let Some(m) = month_of(w) else { continue };
            let lw = w.to_ascii_lowercase();
            // "may" and "mar" are English words: only a month beside "in" or a year.
            if lw == "may" || lw == "mar" {
                let prev_in = i > 0 && words[i - 1].eq_ignore_ascii_case("in");
                let year_after =
                    lower.contains(&format!("{lw} 19")) || lower.contains(&format!("{lw} 20"));
                if !(prev_in || year_after) {
                    continue;
                }
            }
            if !u.months.contains(&m) {
                u.months.push(m);
            }
        }
    }

    // "Plumas and Lassen counties": the plural vouches for every name in the list.
    let plural = contains_phrase(&lower, "counties");
    for county in COUNTIES {
        let c = county.to_ascii_lowercase();
        let with_suffix = contains_phrase(&lower, &format!("{c} county"));
        let bare = (plural || !NEEDS_SUFFIX.contains(&county)) && contains_phrase(&lower, &c);
        if with_suffix || bare {
            u.counties.push(county.to_owned());
        }
    }
    // "Santa Rosa" is a city, not Santa Cruz; "Nevada" alone is the state: both need care above.
    for (word, region) in REGION_WORDS {
        if contains_phrase(&lower, word) {
            u.region = Some(region.to_owned());
            break;
        }
    }
    u
}

fn ymd(y: &str, m: &str, d: &str) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// `phrase` as whole words in `text` (both lower case).
fn contains_phrase(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_years_months_counties_and_sizes() {
        let u = understand("the big November 2018 fire in Butte County");
        assert_eq!(u.years, vec![2018]);
        assert_eq!(u.months, vec![11]);
        assert_eq!(u.counties, vec!["Butte".to_owned()]);
        let u = understand("fires over 100,000 acres in 2020");
        assert_eq!(u.min_acres, Some(100_000.0));
        assert_eq!(u.years, vec![2020]);
        let u = understand("grass fires under 5k acres near Redding");
        assert_eq!(u.max_acres, Some(5_000.0));
        assert!(u.counties.is_empty(), "Redding is a city: {u:?}");
    }

    #[test]
    fn reads_dates_and_avoids_ambiguous_words() {
        assert_eq!(
            understand("what burned on November 8, 2018?").date,
            NaiveDate::from_ymd_opt(2018, 11, 8)
        );
        assert_eq!(
            understand("fire of 2017-10-09").date,
            NaiveDate::from_ymd_opt(2017, 10, 9)
        );
        let u = understand("fires that may spread near the lake");
        assert!(u.months.is_empty() && u.counties.is_empty(), "{u:?}");
        assert_eq!(understand("fires in May 2019").months, vec![5]);
        assert_eq!(
            understand("Lake County fires").counties,
            vec!["Lake".to_owned()]
        );
        assert_eq!(
            understand("bushfires in New South Wales").region.as_deref(),
            Some("New South Wales")
        );
    }
}
