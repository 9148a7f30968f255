//! Words people use for what the documents say otherwise: "huge" for a megafire, "deadly" for
//! fatalities, "homes burned" for structures destroyed. The BM25 leg searches the question with
//! the documents' words added; the sentence encoder needs no help with such paraphrases.

/// Each group: the words a question may use, and the words the documents use for it (as
/// `render.rs` writes incidents and events).
const GROUPS: [(&[&str], &str); 7] = [
    (
        &[
            "huge", "massive", "giant", "enormous", "mega", "gigantic", "monster",
        ],
        "megafire largest",
    ),
    (&["big", "major", "sizable"], "large"),
    (&["tiny", "little", "minor"], "small"),
    (
        &[
            "deadly",
            "deadliest",
            "killed",
            "died",
            "deaths",
            "fatal",
            "lethal",
            "dead",
        ],
        "fatalities",
    ),
    (
        &[
            "homes",
            "houses",
            "buildings",
            "residences",
            "neighborhoods",
            "neighbourhoods",
        ],
        "structures destroyed",
    ),
    (
        &["blaze", "wildfire", "bushfire", "inferno", "conflagration"],
        "fire",
    ),
    (&["satellite", "hotspot", "hotspots", "pixel"], "detection"),
];

/// `query` followed by the documents' words for the words it uses (each added once).
pub fn expand(query: &str) -> String {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let mut out = query.to_owned();
    for (said, written) in GROUPS {
        if said.iter().any(|s| words.iter().any(|w| w == s)) {
            for term in written.split(' ') {
                if !words.iter().any(|w| w == term) {
                    out.push(' ');
                    out.push_str(term);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn a_question_gets_the_documents_words_for_its_own() {
        assert_eq!(
            expand("huge deadly fire near Redding"),
            "huge deadly fire near Redding megafire largest fatalities"
        );
        assert_eq!(expand("largest fire"), "largest fire");
        assert_eq!(expand("homes burned"), "homes burned structures destroyed");
    }
}
