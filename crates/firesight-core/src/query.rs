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
    /// A span said in words ("summer 2018", "the 2019-20 season", "last summer"): documents
    /// starting within it. It replaces the years and months read from the same words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Places said that the data knows ("near Redding"): their counties are read as the
    /// counties asked for, when the question names none itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub places: Vec<PlaceRead>,
    /// "The largest", "the biggest": the matching documents ordered by size, largest first.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub largest: bool,
}

/// A place said in a question, and the counties the data puts it in.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PlaceRead {
    /// The words, as the gazetteer holds them (lower case).
    pub said: String,
    /// The counties of the incidents whose locations name it, most first.
    pub counties: Vec<String>,
}

/// A span of days read from the query, with the words that said it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Period {
    /// First day.
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    /// Last day.
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    /// The words, as said ("last summer").
    pub said: String,
    /// Counted back from the data's newest day ("last summer"), not named with its year.
    #[serde(skip)]
    pub relative: bool,
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

static SEASON_YEAR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:(spring|summer|autumn|fall|winter)(?:\s+of)?\s+((?:19|20)\d\d)(?:\s*[-/–]\s*(\d{2}|\d{4}))?|((?:19|20)\d\d)(?:\s*[-/–]\s*(\d{2}|\d{4}))?\s+(spring|summer|autumn|fall|winter|(?:fire\s+|bushfire\s+)?season))\b",
    )
    .unwrap_or_else(|e| unreachable!("season pattern: {e}"))
});
static LARGEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(largest|biggest)\b").unwrap_or_else(|e| unreachable!("largest: {e}"))
});
static RELATIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(last|this|past)\s+(spring|summer|autumn|fall|winter|year)\b")
        .unwrap_or_else(|e| unreachable!("relative pattern: {e}"))
});

/// Regions south of the equator, where summer is December to February.
const SOUTHERN: [&str; 8] = [
    "New South Wales",
    "Victoria",
    "Queensland",
    "Tasmania",
    "Western Australia",
    "South Australia",
    "Northern Territory",
    "Australia",
];

/// The first month of a season and the year its first month falls in, for a season named with
/// `year`: a northern winter runs December `year` to February; a southern summer named by one
/// year is the one whose January falls in it ("summer 2020" in Australia: December 2019 to
/// February 2020), and one named by two years starts in the first.
fn season_start(season: &str, year: i32, southern: bool, two_years: bool) -> (i32, u32) {
    let season = if season == "fall" { "autumn" } else { season };
    let month = match (season, southern) {
        ("spring", false) | ("autumn", true) => 3,
        ("summer", false) | ("winter", true) => 6,
        ("autumn", false) | ("spring", true) => 9,
        _ => 12,
    };
    let december_of_the_year_before = month == 12 && southern && !two_years;
    (
        if december_of_the_year_before {
            year - 1
        } else {
            year
        },
        month,
    )
}

/// Three months from `(year, month)`.
fn three_months(year: i32, month: u32) -> Option<(NaiveDate, NaiveDate)> {
    let from = NaiveDate::from_ymd_opt(year, month, 1)?;
    let after = from.checked_add_months(chrono::Months::new(3))?;
    Some((from, after.pred_opt()?))
}

/// A fire season named by a year: the calendar year in the north (CAL FIRE counts seasons by
/// year), July to June in the south, starting in the year named first.
fn fire_season(year: i32, southern: bool) -> Option<(NaiveDate, NaiveDate)> {
    if southern {
        Some((
            NaiveDate::from_ymd_opt(year, 7, 1)?,
            NaiveDate::from_ymd_opt(year + 1, 6, 30)?,
        ))
    } else {
        Some((
            NaiveDate::from_ymd_opt(year, 1, 1)?,
            NaiveDate::from_ymd_opt(year, 12, 31)?,
        ))
    }
}

/// A season or fire season said with its year: "summer 2018", "the 2019-20 season".
fn named_period(query: &str, southern: bool) -> Option<Period> {
    let c = SEASON_YEAR.captures(query)?;
    let said = c.get(0)?.as_str().to_owned();
    let (word, year, second) = match c.get(1) {
        Some(season) => (season.as_str(), c.get(2)?, c.get(3)),
        None => (c.get(6)?.as_str(), c.get(4)?, c.get(5)),
    };
    let word = word.to_ascii_lowercase();
    let year: i32 = year.as_str().parse().ok()?;
    let (from, to) = if word.ends_with("season") {
        fire_season(year, southern || second.is_some())?
    } else {
        let (y, m) = season_start(&word, year, southern, second.is_some());
        three_months(y, m)?
    };
    Some(Period {
        from,
        to,
        said,
        relative: false,
    })
}

/// "last summer", "this year": the latest such span that has begun by `data_end`, the newest
/// day in the data ("last" skips one still running at that day).
fn relative_period(query: &str, southern: bool, data_end: NaiveDate) -> Option<Period> {
    let c = RELATIVE.captures(query)?;
    let said = c.get(0)?.as_str().to_owned();
    let which = c[1].to_ascii_lowercase();
    let what = c[2].to_ascii_lowercase();
    let end_year = chrono::Datelike::year(&data_end);
    let (from, to) = if what == "year" {
        let year = if which == "this" {
            end_year
        } else {
            end_year - 1
        };
        fire_season(year, false)?
    } else {
        // Candidates that began by data_end, newest first.
        let mut spans = (end_year - 1..=end_year + 1)
            .rev()
            .filter_map(|y| {
                let (sy, sm) = season_start(&what, y, southern, true);
                three_months(sy, sm)
            })
            .filter(|(from, _)| *from <= data_end);
        let latest = spans.next()?;
        if which == "last" && latest.1 >= data_end {
            spans.next()?
        } else {
            latest
        }
    };
    Some(Period {
        from,
        to,
        said,
        relative: true,
    })
}

fn month_of(word: &str) -> Option<u32> {
    let w = word.to_ascii_lowercase();
    MONTH_NAMES
        .iter()
        .find(|(n, _)| *n == w)
        .map(|(_, m)| *m)
        .or_else(|| (w == "may").then_some(5))
}

/// Reads the filters a query states. Relative spans ("last summer") need the data's newest
/// day: see [`understand_at`].
pub fn understand(query: &str) -> Understood {
    understand_at(query, None)
}

/// [`understand`], reading relative spans ("last summer", "this year") against `data_end`, the
/// newest day in the data searched, rather than the clock: a store of archives has no "now".
pub fn understand_at(query: &str, data_end: Option<NaiveDate>) -> Understood {
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
        // "The Santa Cruz Mountains" are a range across three counties, not Santa Cruz County.
        let range = contains_phrase(&lower, &format!("{c} mountains"));
        let bare =
            (plural || !NEEDS_SUFFIX.contains(&county)) && !range && contains_phrase(&lower, &c);
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
    u.largest = LARGEST.is_match(query);
    let southern = u.region.as_deref().is_some_and(|r| SOUTHERN.contains(&r));
    let period = named_period(query, southern)
        .or_else(|| data_end.and_then(|end| relative_period(query, southern, end)));
    if let Some(period) = period {
        // The span says which days; the years and months read from its words would only cut
        // a span that crosses a new year.
        u.years.clear();
        u.months.clear();
        u.period = Some(period);
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
        assert!(
            understand("the ridge above Morgan Hill in the Santa Cruz Mountains")
                .counties
                .is_empty()
        );
        assert_eq!(
            understand("Santa Cruz County fire in the Santa Cruz Mountains").counties,
            ["Santa Cruz"]
        );
        assert!(understand("the largest fire of 2020").largest);
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

    fn period(query: &str, end: Option<&str>) -> Option<(String, String)> {
        let end = end.map(|e| e.parse::<NaiveDate>().expect("date"));
        understand_at(query, end)
            .period
            .map(|p| (p.from.to_string(), p.to.to_string()))
    }

    fn span(from: &str, to: &str) -> Option<(String, String)> {
        Some((from.to_owned(), to.to_owned()))
    }

    #[test]
    fn seasons_said_with_a_year_follow_the_hemisphere() {
        assert_eq!(
            period("fires in summer 2018", None),
            span("2018-06-01", "2018-08-31")
        );
        assert_eq!(
            period("the 2018 summer fires", None),
            span("2018-06-01", "2018-08-31")
        );
        assert_eq!(
            period("winter of 2017 fires", None),
            span("2017-12-01", "2018-02-28")
        );
        assert_eq!(
            period("Butte County fall 2018", None),
            span("2018-09-01", "2018-11-30")
        );
        // South of the equator the seasons turn round; a one-year summer is the one whose
        // January falls in that year, a two-year one starts in the first.
        assert_eq!(
            period("bushfires in Victoria in summer 2020", None),
            span("2019-12-01", "2020-02-29")
        );
        assert_eq!(
            period("New South Wales fires, summer 2019-20", None),
            span("2019-12-01", "2020-02-29")
        );
        assert_eq!(
            period("the 2019-20 season", None),
            span("2019-07-01", "2020-06-30")
        );
        assert_eq!(
            period("the 2018 fire season", None),
            span("2018-01-01", "2018-12-31")
        );
        let u = understand("summer 2018 fires in Butte County");
        assert!(u.years.is_empty() && u.months.is_empty(), "{u:?}");
        assert_eq!(u.period.map(|p| p.said), Some("summer 2018".to_owned()));
    }

    #[test]
    fn relative_spans_are_read_against_the_data_not_the_clock() {
        let end = Some("2022-10-15");
        assert_eq!(
            period("fires last summer", end),
            span("2022-06-01", "2022-08-31")
        );
        assert_eq!(
            period("fires this summer", end),
            span("2022-06-01", "2022-08-31")
        );
        // A spring still running at the data's end is "this", not "last".
        assert_eq!(
            period("fires last spring", Some("2022-05-10")),
            span("2021-03-01", "2021-05-31")
        );
        assert_eq!(
            period("fires this year", end),
            span("2022-01-01", "2022-12-31")
        );
        assert_eq!(
            period("fires last year", end),
            span("2021-01-01", "2021-12-31")
        );
        assert_eq!(
            period("Victoria fires last summer", Some("2020-06-30")),
            span("2019-12-01", "2020-02-29")
        );
        // Without data there is no "last": nothing is read rather than a guess.
        assert_eq!(period("fires last summer", None), None);
        // At the calendar's ends a span that cannot exist is not read, and nothing panics.
        for end in [NaiveDate::MIN, NaiveDate::MAX] {
            for q in ["last summer", "this winter", "last year", "this year"] {
                let _ = understand_at(q, Some(end));
            }
        }
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
