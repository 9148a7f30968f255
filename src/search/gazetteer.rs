//! Place names the data itself knows: the towns, passes, parks and communities that historical
//! incidents' `location` fields name ("Saddle Ridge Rd, Sylmar", "3 miles east of Groveland"),
//! each with the counties of the incidents that named it. A question that says a place its
//! incident's own text does not ("the Santa Clarita area fire") is read as those counties. Built
//! from the documents as they are indexed, so it covers whatever incidents were loaded and names
//! nothing it has not seen; besides, it knows CAL FIRE's unit codes.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::query::PlaceRead;

/// Words that are parts of road names, directions or distances, never a place on their own.
const NOT_PLACES: &[&str] = &[
    "and",
    "at",
    "of",
    "off",
    "the",
    "in",
    "on",
    "near",
    "from",
    "to",
    "by",
    "along",
    "between",
    "north",
    "south",
    "east",
    "west",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
    "ne",
    "nw",
    "se",
    "sw",
    "miles",
    "mile",
    "mi",
    "road",
    "rd",
    "hwy",
    "highway",
    "street",
    "st",
    "avenue",
    "ave",
    "blvd",
    "boulevard",
    "drive",
    "dr",
    "lane",
    "ln",
    "way",
    "interstate",
    "i",
    "route",
    "sr",
    "us",
    "fire",
    "area",
    "county",
    "california",
    "about",
    "approximately",
    "approx",
    "just",
    "located",
    "vicinity",
    "town",
    "community",
    "city",
    "various",
    "multiple",
    "several",
    "unknown",
    "incident",
    "complex",
];

/// Words too common in questions to name a place alone ("the valley", "near the lake").
const GENERIC: [&str; 26] = [
    "lake",
    "valley",
    "canyon",
    "creek",
    "ridge",
    "mountain",
    "mountains",
    "river",
    "park",
    "forest",
    "national",
    "city",
    "state",
    "springs",
    "hills",
    "hill",
    "peak",
    "pass",
    "flat",
    "ranch",
    "mesa",
    "point",
    "center",
    "camp",
    "country",
    "reservoir",
];

/// Longest place name read, in words.
const MAX_WORDS: usize = 3;

/// CAL FIRE's units by their three-letter codes ("the LNU fires"), with the counties each is
/// named for. Contract counties (Los Angeles, Kern, Orange, Ventura, Santa Barbara, Marin) have
/// no unit code of CAL FIRE's.
const UNITS: [(&str, &[&str]); 21] = [
    ("aeu", &["Amador", "El Dorado"]),
    ("beu", &["San Benito", "Monterey"]),
    ("btu", &["Butte"]),
    ("bdu", &["San Bernardino"]),
    ("czu", &["San Mateo", "Santa Cruz"]),
    ("fku", &["Fresno", "Kings"]),
    ("huu", &["Humboldt", "Del Norte"]),
    ("lmu", &["Lassen", "Modoc"]),
    ("lnu", &["Sonoma", "Lake", "Napa"]),
    ("meu", &["Mendocino"]),
    ("mmu", &["Madera", "Mariposa", "Merced"]),
    ("mvu", &["San Diego"]),
    ("neu", &["Nevada", "Yuba", "Placer"]),
    ("rru", &["Riverside"]),
    ("scu", &["Santa Clara"]),
    ("shu", &["Shasta", "Trinity"]),
    ("sku", &["Siskiyou"]),
    ("slu", &["San Luis Obispo"]),
    ("tcu", &["Tuolumne", "Calaveras"]),
    ("tgu", &["Tehama", "Glenn"]),
    ("tuu", &["Tulare"]),
];

/// Place name (lower case) → county → incidents naming it there.
#[derive(Debug)]
pub struct Gazetteer {
    places: HashMap<String, BTreeMap<String, u32>>,
}

impl Default for Gazetteer {
    /// Knows CAL FIRE's unit codes, and no place until documents are added.
    fn default() -> Self {
        let mut places: HashMap<String, BTreeMap<String, u32>> = HashMap::new();
        for (code, counties) in UNITS {
            let entry = places.entry(code.to_owned()).or_default();
            for county in counties {
                entry.insert((*county).to_owned(), 1);
            }
        }
        Self { places }
    }
}

impl Gazetteer {
    /// Adds the places an incident's `location` names, in its `counties`.
    pub fn add(&mut self, location: &str, counties: &[String]) {
        if counties.is_empty() {
            return;
        }
        for place in place_names(location) {
            let entry = self.places.entry(place).or_default();
            for county in counties {
                *entry.entry(county.clone()).or_default() += 1;
            }
        }
    }

    /// The places `query` says, longest first, with the counties that hold at least a fifth of
    /// each one's mentions. A place inside a longer one said too ("Lake Tahoe" in "South Lake
    /// Tahoe") is not read again.
    pub fn read(&self, query: &str) -> Vec<PlaceRead> {
        let words: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        let mut taken = vec![false; words.len()];
        let mut out = Vec::new();
        for n in (1..=MAX_WORDS).rev() {
            for start in 0..words.len().saturating_sub(n - 1) {
                if taken[start..start + n].iter().any(|t| *t) {
                    continue;
                }
                let phrase = words[start..start + n].join(" ");
                let Some(counties) = self.places.get(&phrase) else {
                    continue;
                };
                let total: u32 = counties.values().sum();
                let mut named: Vec<(&String, &u32)> =
                    counties.iter().filter(|(_, n)| **n * 5 >= total).collect();
                named.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                taken[start..start + n].iter_mut().for_each(|t| *t = true);
                out.push(PlaceRead {
                    said: phrase,
                    counties: named.into_iter().map(|(c, _)| c.clone()).collect(),
                });
            }
        }
        out
    }
}

/// The place names in a location: runs of capitalised words that are not road parts, directions
/// or distances, lower-cased. A run right before a road word ("Summit Knoll Rd") is a road's name,
/// not a place. Of a run, its parts of two words or more that are not all generic count too
/// ("Lake Tahoe" of "Lake Tahoe Basin"), and its first word where every other is generic
/// ("Yosemite" of "Yosemite National Park", "Porter" of "Porter Ranch"); a single generic word,
/// or one of under four letters, never does, but a whole run of generic words does ("Canyon
/// Country").
fn place_names(location: &str) -> Vec<String> {
    let mut out = Vec::new();
    // A location is posted text: de-duplicate through a set, not by scanning `out`.
    let mut seen = HashSet::new();
    let mut run: Vec<String> = Vec::new();
    let words: Vec<&str> = location
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect();
    let generic = |w: &str| GENERIC.contains(&w) || w.len() < 4;
    let mut flush = |run: &mut Vec<String>, out: &mut Vec<String>, road_follows: bool| {
        if !road_follows && !run.is_empty() {
            let mut keep = |phrase: String| {
                if seen.insert(phrase.clone()) {
                    out.push(phrase);
                }
            };
            if run.len() == 1 {
                if !generic(&run[0]) {
                    keep(run[0].clone());
                }
            } else {
                if run[1..].iter().all(|w| generic(w)) && !generic(&run[0]) {
                    keep(run[0].clone());
                }
                for n in 2..=run.len().min(MAX_WORDS) {
                    for start in 0..=run.len() - n {
                        let part = &run[start..start + n];
                        if n == run.len() || !part.iter().all(|w| generic(w)) {
                            keep(part.join(" "));
                        }
                    }
                }
            }
        }
        run.clear();
    };
    for w in words {
        let lower = w.to_ascii_lowercase();
        let capitalised = w.chars().next().is_some_and(char::is_uppercase);
        if capitalised && !NOT_PLACES.contains(&lower.as_str()) {
            run.push(lower);
            continue;
        }
        let road = matches!(
            lower.as_str(),
            "road"
                | "rd"
                | "street"
                | "st"
                | "avenue"
                | "ave"
                | "blvd"
                | "boulevard"
                | "drive"
                | "dr"
                | "lane"
                | "ln"
                | "way"
        );
        flush(&mut run, &mut out, road);
    }
    flush(&mut run, &mut out, false);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counties(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn places_are_read_from_locations_and_roads_are_not() {
        assert_eq!(place_names("Saddle Ridge Rd, Sylmar"), ["sylmar"]);
        assert_eq!(
            place_names("3 miles east of Groveland along Hwy 120"),
            ["groveland"]
        );
        assert_eq!(
            place_names("Tick Canyon Rd and Summit Knoll Rd, Canyon Country"),
            ["canyon country"]
        );
        assert_eq!(
            place_names("in Yosemite National Park"),
            ["yosemite", "yosemite national", "yosemite national park"]
        );
        assert_eq!(
            place_names("Hwy 243 & Hwy 74 near Mountain Center"),
            ["mountain center"]
        );
    }

    #[test]
    fn a_question_reads_the_longest_place_and_its_main_counties() {
        let mut g = Gazetteer::default();
        g.add("west of Redding", &counties(&["Shasta"]));
        g.add("Clear Creek Rd, west of Redding", &counties(&["Shasta"]));
        g.add("near South Lake Tahoe", &counties(&["El Dorado"]));
        g.add("Yosemite National Park", &counties(&["Mariposa"]));
        g.add("Yosemite National Park", &counties(&["Tuolumne"]));
        g.add("Yosemite Valley", &counties(&["Mariposa"]));
        let read = g.read("huge fire near Redding in summer 2018");
        assert_eq!(read.len(), 1);
        assert_eq!(
            (read[0].said.as_str(), read[0].counties.clone()),
            ("redding", counties(&["Shasta"]))
        );
        let tahoe = g.read("the fire that threatened South Lake Tahoe");
        assert_eq!(tahoe[0].said, "lake tahoe");
        assert_eq!(tahoe.len(), 1, "{tahoe:?}");
        let yosemite = g.read("fire near Yosemite that closed the valley");
        assert_eq!(yosemite[0].counties, counties(&["Mariposa", "Tuolumne"]));
        assert!(g.read("a fire in the valley near the lake").is_empty());
        g.add(
            "About 2 miles north of Town of Paradise",
            &counties(&["Butte"]),
        );
        assert_eq!(
            g.read("the town of Paradise, about noon")[0].said,
            "paradise"
        );
        assert_eq!(g.read("the town of Paradise, about noon").len(), 1);
        let unit = g.read("LNU fires in 2017");
        assert_eq!(unit[0].counties, counties(&["Lake", "Napa", "Sonoma"]));
    }
}
