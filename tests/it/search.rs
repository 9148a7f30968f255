//! The sentence encoder against sentence-transformers, natural-language search over the CAL FIRE
//! incidents (with the evaluation the README reports), and bad queries over HTTP.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use firesight::app::Service;
use firesight::embed::SentenceEncoder;
use firesight::search::{Constraints, Doc, Fusion, Ranker, SearchIndex};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::support::{open_async, repo, sample, serve_all, settings, shared};

fn encoder() -> SentenceEncoder {
    SentenceEncoder::load(
        &repo().join("models/manifest.json"),
        "all-minilm-l6-v2",
        "",
        1,
    )
    .expect("sentence encoder loads (scripts/setup.sh installs its files)")
}

#[test]
fn sentence_encoder_matches_sentence_transformers() {
    let text = std::fs::read_to_string(repo().join("models/fixtures/minilm_reference.json"))
        .expect("fixture");
    let reference: Value = serde_json::from_str(&text).expect("json");
    let items = reference["items"].as_array().expect("items");
    let texts: Vec<&str> = items
        .iter()
        .map(|i| i["text"].as_str().expect("text"))
        .collect();
    let encoder = encoder();
    let encoded = encoder.encode(&texts).expect("encodes");
    for (item, e) in items.iter().zip(&encoded) {
        let want: Vec<f64> = item["vector"]
            .as_array()
            .expect("vector")
            .iter()
            .map(|v| v.as_f64().expect("f64"))
            .collect();
        let cosine: f64 = e
            .vector
            .iter()
            .zip(&want)
            .map(|(a, b)| f64::from(*a) * b)
            .sum();
        assert!(cosine >= 0.98, "cosine {cosine:.4} for {:?}", item["text"]);
    }
    // Only the long paragraph runs past the 256-token window, and it says so.
    let truncated: Vec<bool> = encoded.iter().map(|e| e.truncated).collect();
    assert_eq!(truncated.iter().filter(|t| **t).count(), 1);
    assert!(truncated[texts.len() - 1] && encoded[texts.len() - 1].tokens == 256);
    // Batching does not change a vector: alone or padded beside longer texts, the same.
    let alone = encoder.encode(&[texts[0]]).expect("alone").remove(0);
    let diff: f32 = alone
        .vector
        .iter()
        .zip(&encoded[0].vector)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-4, "padding changed the vector by {diff}");
}

/// A service with both CAL FIRE exports loaded and its search index built.
struct Incidents {
    _dir: TempDir,
    service: Arc<Service>,
}

async fn incidents() -> &'static Incidents {
    static CELL: OnceLock<Incidents> = OnceLock::new();
    if let Some(i) = CELL.get() {
        return i;
    }
    let dir = TempDir::new().expect("tempdir");
    let files = vec![
        shared("incidents/California_Fire_Incidents.csv"),
        shared("incidents/calfire_mapdataall.csv"),
    ];
    let service = open_async(settings(dir.path()), files).await;
    wait_ready(&service).await;
    let _ = CELL.set(Incidents { _dir: dir, service });
    CELL.get().expect("set")
}

async fn wait_ready(service: &Service) {
    let search = service.search.as_ref().expect("search on");
    let started = Instant::now();
    while !search.ready.load(std::sync::atomic::Ordering::Acquire) {
        if let Some(f) = search.failure.lock().expect("lock").clone() {
            panic!("search build failed: {f}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "search index not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // BM25 answers from here on; the evaluation needs every sentence vector too.
    while search.index.pending_vectors() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "sentence vectors not computed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn search_answers_by_bm25_at_once_and_by_vectors_as_they_come() {
    let incidents = incidents()
        .await
        .service
        .store
        .historical_incidents()
        .expect("read");
    let docs: Vec<Doc> = incidents.iter().map(Doc::incident).collect();
    let dir = TempDir::new().expect("tempdir");
    let store = Arc::new(firesight::store::Store::open(&dir.path().join("db")).expect("store"));
    let index = SearchIndex::new(Arc::new(encoder()), store, Fusion::Rrf).expect("index");
    let total = docs.len();
    assert_eq!(index.add_text(docs).expect("text"), total);
    assert_eq!(index.pending_vectors(), total);
    // A document added on its own (an HTTP POST) is embedded at once, and only it: the
    // start-up backlog stays with the thread that works through it.
    let mut posted = incidents[0].clone();
    posted.id = "posted-while-the-backlog-is-embedded".into();
    assert_eq!(index.add(vec![Doc::incident(&posted)]).expect("add"), 1);
    assert_eq!(index.pending_vectors(), total);
    let question = "the fire that destroyed the town of Paradise in November 2018";
    let camp = "75dafe80-f18a-4a4a-9a37-4b564c5f6014";
    let ask = || {
        index
            .search(question, 10, Ranker::Hybrid, Constraints::default(), true)
            .expect("search")
    };
    // Nothing embedded yet: BM25 alone answers, and the answer says why.
    let early = ask();
    assert_eq!(early.pending_vectors, total);
    assert!(
        early
            .notes
            .iter()
            .any(|n| n.contains("still being computed")),
        "{:?}",
        early.notes
    );
    assert!(
        early
            .hits
            .iter()
            .all(|h| h.vector_rank.is_none() && h.bm25_rank.is_some())
    );
    assert!(
        early.hits.iter().any(|h| h.id == camp),
        "BM25 finds the Camp Fire"
    );
    // Vectors come in batches, oldest documents first, without blocking searches.
    assert_eq!(index.embed_pending(64).expect("embed"), 64);
    assert_eq!(index.pending_vectors(), total - 64);
    while index.embed_pending(512).expect("embed") > 0 {}
    let late = ask();
    assert_eq!(late.pending_vectors, 0);
    assert!(
        late.notes
            .iter()
            .all(|n| !n.contains("still being computed"))
    );
    assert!(late.hits.iter().any(|h| h.vector_rank.is_some()));
    assert_eq!(late.hits[0].id, camp);
}

#[tokio::test]
async fn loosely_said_dates_are_read_against_the_data() {
    let service = &incidents().await.service;
    let index = Arc::clone(&service.search.as_ref().expect("search").index);
    let answers = tokio::task::spawn_blocking(move || {
        ["fires last summer", "fires in summer 2018 in Butte County"].map(|q| {
            index
                .search(q, 10, Ranker::Bm25, Constraints::default(), true)
                .expect("search")
        })
    })
    .await
    .expect("join");
    // The newest incident in the two exports starts on 28 June 2022, in a summer still running
    // then: "last summer" is June to August 2021, and the answer says it counted back from the
    // data, not from today.
    let [last, named] = answers;
    let period = last.understood.period.clone().expect("read");
    assert_eq!(
        (period.from.to_string(), period.to.to_string()),
        ("2021-06-01".into(), "2021-08-31".into())
    );
    assert!(
        last.notes
            .iter()
            .any(|n| n.contains("newest day in the data")),
        "{:?}",
        last.notes
    );
    assert!(!last.hits.is_empty());
    for answer in [&last, &named] {
        let p = answer.understood.period.as_ref().expect("period");
        for hit in &answer.hits {
            let day = hit.date.as_deref().expect("dated").get(..10).expect("day");
            let day: chrono::NaiveDate = day.parse().expect("date");
            assert!(
                p.from <= day && day <= p.to,
                "{} on {day} outside {p:?}",
                hit.title
            );
        }
    }
    // Butte County, summer 2018: the summer filter and the county apply together.
    assert!(
        named
            .hits
            .iter()
            .all(|h| h.counties.iter().any(|c| c == "Butte"))
    );
    assert!(named.notes.iter().all(|n| !n.contains("newest day")));
}

#[tokio::test]
async fn both_cal_fire_exports_merge_into_one_record_per_incident() {
    let service = &incidents().await.service;
    let stored = service.store.historical_incidents().expect("incidents");
    // 1,636 + 1,974 rows, 2,126 distinct UUIDs; a row with its id missing would be a dead letter.
    assert_eq!(stored.len(), 2_126);
    let thomas = stored
        .iter()
        .find(|i| i.name == "Thomas Fire" && i.acres.is_some_and(|a| a > 200_000.0))
        .expect("Thomas Fire");
    assert!(thomas.counties.contains(&"Ventura".to_owned()));
    assert!(
        thomas.counties.contains(&"Santa Barbara".to_owned()),
        "{thomas:?}"
    );
    assert!(
        !thomas.description.is_empty(),
        "the older export's text is kept"
    );
    assert_eq!(service.search.as_ref().expect("search").index.len(), 2_126);
}

/// A labelled query set: each question with the incident ids it is about.
fn query_set(file: &str) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(repo().join("tests/data").join(file)).expect("queries");
    let set: Value = serde_json::from_str(&text).expect("json");
    let queries = set["queries"].as_array().expect("queries");
    queries
        .iter()
        .map(|q| {
            let relevant = q["relevant"].as_array().expect("relevant").iter();
            (
                q["query"].as_str().expect("query").to_owned(),
                relevant
                    .map(|r| r.as_str().expect("id").to_owned())
                    .collect(),
            )
        })
        .collect()
}

/// MRR@10 and recall@10 of one ranker and fusion over a query set.
fn score(
    index: &SearchIndex,
    queries: &[(String, Vec<String>)],
    ranker: Ranker,
    fusion: Fusion,
    understand: bool,
) -> (f64, f64) {
    let (mut rr, mut recall) = (0.0, 0.0);
    for (query, relevant) in queries {
        let answer = index
            .search_fused(
                query,
                10,
                ranker,
                fusion,
                Constraints::default(),
                understand,
            )
            .expect("search");
        let ranks: Vec<usize> = answer
            .hits
            .iter()
            .enumerate()
            .filter(|(_, h)| relevant.contains(&h.id))
            .map(|(i, _)| i + 1)
            .collect();
        rr += ranks.first().map_or(0.0, |r| 1.0 / *r as f64);
        recall += ranks.len() as f64 / relevant.len() as f64;
    }
    let n = queries.len() as f64;
    (rr / n, recall / n)
}

/// The fusion `hybrid` uses by default (`config/default.toml`).
fn default_fusion() -> Fusion {
    firesight::config::Settings::defaults()
        .expect("defaults")
        .search
        .fusion()
}

/// The README's search table, on the evaluation set and on the tuning set apart
/// (`cargo test --test it search_evaluation -- --nocapture`).
#[tokio::test]
async fn search_evaluation() {
    let service = &incidents().await.service;
    let index = Arc::clone(&service.search.as_ref().expect("search").index);
    let evaluation = query_set("search_queries.json");
    let tuning = query_set("search_tuning_queries.json");
    assert!(evaluation.len() >= 30 && tuning.len() >= 30);
    // No question of one set is in the other.
    assert!(
        evaluation
            .iter()
            .all(|(q, _)| tuning.iter().all(|(t, _)| t != q))
    );
    let convex = default_fusion();
    let rankers = [
        ("BM25 (tantivy)", Ranker::Bm25, convex),
        ("vectors (MiniLM)", Ranker::Vector, convex),
        ("hybrid (RRF)", Ranker::Hybrid, Fusion::Rrf),
        ("hybrid (convex), the default", Ranker::Hybrid, convex),
    ];
    let scores = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (name, ranker, fusion) in rankers {
            for understand in [false, true] {
                let e = score(&index, &evaluation, ranker, fusion, understand);
                let t = score(&index, &tuning, ranker, fusion, understand);
                out.push((name, understand, e, t));
            }
        }
        out
    })
    .await
    .expect("join");
    println!(
        "\n| ranker | query understanding | evaluation MRR@10 | evaluation recall@10 | tuning MRR@10 | tuning recall@10 |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, understand, e, t) in &scores {
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            if *understand { "on" } else { "off" },
            e.0,
            e.1,
            t.0,
            t.1
        );
    }
    if std::env::var_os("FIRESIGHT_SEARCH_MISSES").is_some() {
        let index = Arc::clone(&service.search.as_ref().expect("search").index);
        let evaluation = query_set("search_queries.json");
        let tuning = query_set("search_tuning_queries.json");
        tokio::task::spawn_blocking(move || {
            let both = evaluation
                .iter()
                .map(|q| ("evaluation", q))
                .chain(tuning.iter().map(|q| ("tuning", q)));
            for (set, (query, relevant)) in both {
                let rank = |ranker, fusion| {
                    let answer = index
                        .search_fused(query, 10, ranker, fusion, Constraints::default(), true)
                        .expect("search");
                    answer
                        .hits
                        .iter()
                        .position(|h| relevant.contains(&h.id))
                        .map(|p| p + 1)
                };
                let (b, h) = (rank(Ranker::Bm25, convex), rank(Ranker::Hybrid, convex));
                if b != Some(1) || h != Some(1) {
                    let understood = index
                        .search_fused(query, 1, Ranker::Bm25, convex, Constraints::default(), true)
                        .expect("search")
                        .understood;
                    println!(
                        "{set}: bm25 {b:?} hybrid {h:?}: {query}\n    understood {}",
                        serde_json::to_string(&understood).unwrap_or_default()
                    );
                }
            }
        })
        .await
        .expect("join");
    }
    let get = |name: &str, understand: bool| {
        scores
            .iter()
            .find(|s| s.0.starts_with(name) && s.1 == understand)
            .map(|s| s.2)
            .expect("score")
    };
    let (hybrid_mrr, hybrid_recall) = get("hybrid (convex)", true);
    let (rrf_mrr, _) = get("hybrid (RRF)", true);
    let (bm25_mrr, bm25_recall) = get("BM25", true);
    let (_, vector_recall) = get("vectors", true);
    let (plain_mrr, _) = get("hybrid (convex)", false);
    assert!(hybrid_recall >= 0.95, "hybrid recall@10 {hybrid_recall:.3}");
    assert!(hybrid_mrr >= 0.8, "hybrid MRR@10 {hybrid_mrr:.3}");
    assert!(
        hybrid_recall >= bm25_recall.max(vector_recall),
        "fusion finds at least what either ranker finds: {hybrid_recall:.3} vs {bm25_recall:.3} / {vector_recall:.3}"
    );
    assert!(
        hybrid_mrr > plain_mrr,
        "query understanding helps: {hybrid_mrr:.3} vs {plain_mrr:.3}"
    );
    // Measured: 0.875 against RRF's 0.840 on the evaluation set; BM25 alone (0.915) is still
    // ahead there, behind on the tuning set (README, search).
    assert!(
        hybrid_mrr > rrf_mrr,
        "the tuned blend ranks better than RRF on questions it was not tuned on: \
         {hybrid_mrr:.3} vs {rrf_mrr:.3} (BM25 {bm25_mrr:.3})"
    );
}

/// The sweep that chose `search.bm25_weight`, on the tuning set only; the configured weight must
/// be the sweep's best (`cargo test --test it fusion_weight_tuning -- --nocapture`).
#[tokio::test]
async fn fusion_weight_tuning() {
    let service = &incidents().await.service;
    let index = Arc::clone(&service.search.as_ref().expect("search").index);
    let tuning = query_set("search_tuning_queries.json");
    let sweep = tokio::task::spawn_blocking(move || {
        (0..=20)
            .map(|step| {
                let bm25_weight = step as f32 / 20.0;
                let fusion = Fusion::Convex { bm25_weight };
                (
                    bm25_weight,
                    score(&index, &tuning, Ranker::Hybrid, fusion, true),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("join");
    println!("\n| bm25_weight | tuning MRR@10 | tuning recall@10 |");
    println!("|---|---|---|");
    for (weight, (mrr, recall)) in &sweep {
        println!("| {weight:.2} | {mrr:.3} | {recall:.3} |");
    }
    let best = sweep.iter().map(|s| s.1.0).fold(0.0, f64::max);
    let Fusion::Convex { bm25_weight } = default_fusion() else {
        panic!("the default fusion is the convex blend");
    };
    let configured = sweep
        .iter()
        .find(|s| (s.0 - bm25_weight).abs() < 1e-6)
        .map(|s| s.1.0)
        .expect("the configured weight is on the sweep's grid");
    assert!(
        configured >= best - 1e-9,
        "search.bm25_weight = {bm25_weight} gives tuning MRR@10 {configured:.3}; the sweep's best is {best:.3}"
    );
}

#[tokio::test]
async fn search_over_http_answers_questions_and_refuses_bad_queries() {
    let service = &incidents().await.service;
    let base = serve_all(service).await;
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        let client = client.clone();
        let url = format!("{base}/v1/search");
        async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("send");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let ask = |v: Value| post(serde_json::to_vec(&v).expect("encode"));

    let (status, camp) =
        ask(json!({"query": "the big November 2018 fire in Butte County", "k": 5})).await;
    assert_eq!(status, 200, "{camp}");
    assert_eq!(camp["hits"][0]["title"], "Camp Fire", "{camp}");
    assert_eq!(camp["understood"]["counties"], json!(["Butte"]));
    assert_eq!(camp["understood"]["years"], json!([2018]));
    assert_eq!(camp["truncated"], false);

    let (_, big) = ask(json!({"query": "fires over 100,000 acres in 2020", "k": 20})).await;
    let hits = big["hits"].as_array().expect("hits");
    assert!(!hits.is_empty());
    assert!(
        hits.iter()
            .all(|h| h["acres"].as_f64().expect("acres") >= 100_000.0
                && h["date"].as_str().expect("date").starts_with("2020")),
        "{big}"
    );

    // Explicit filters add to what is understood.
    let (status, filtered) = ask(json!({"query": "grass fire", "filters": {"county": "Napa", "from": "2016-01-01", "to": "2016-12-31"}})).await;
    assert_eq!(status, 200, "{filtered}");
    for h in filtered["hits"].as_array().expect("hits") {
        assert!(
            h["counties"]
                .as_array()
                .expect("counties")
                .contains(&json!("Napa"))
        );
        assert!(h["date"].as_str().expect("date").starts_with("2016"));
    }

    let (status, err) = ask(json!({"query": "   "})).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("query")),
        "{err}"
    );
    let (status, err) = ask(json!({"query": "fire ".repeat(20_000)})).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("query")),
        "{err}"
    );
    let (status, err) = post(b"{\"query\": \"fire \xff\xfe near Redding\"}".to_vec()).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("body")),
        "{err}"
    );
    let (status, err) = ask(json!({"query": "fire", "k": 0})).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("k")),
        "{err}"
    );
    let (status, err) = ask(json!({"query": "fire", "filters": {"min_acres": -5.0}})).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("filters.min_acres")),
        "{err}"
    );
    let (status, err) = ask(json!({"query": "fire", "colour": "red"})).await;
    assert_eq!(status, 400, "{err}");

    // Another language: answered, with a note that says the encoder is English-only.
    let (status, other) = ask(json!({"query": "カリフォルニアの山火事 2018"})).await;
    assert_eq!(status, 200, "{other}");
    assert!(
        other["notes"][0]
            .as_str()
            .expect("note")
            .contains("English"),
        "{other}"
    );
    // Longer than the encoder's window but within the byte limit: embedded truncated, and said.
    let long = "wind-driven fire burning through chaparral above the town ".repeat(40);
    let (status, long) = ask(json!({"query": long, "understand": false})).await;
    assert_eq!(status, 200, "{long}");
    assert_eq!(long["truncated"], true);
    assert_eq!(long["query_tokens"], 256);
    assert!(
        long["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .any(|n| n.as_str().expect("s").contains("256 tokens"))
    );
}

#[tokio::test]
async fn fire_events_are_searchable_by_what_their_text_says() {
    // Every 40th detection of the archive, with the weather, so events carry their conditions.
    let dir = TempDir::new().expect("tempdir");
    let archive = std::fs::read_to_string(sample("fire_archive_M6_96619.csv")).expect("archive");
    let mut lines = archive.lines();
    let mut subset = format!("{}\n", lines.next().expect("header"));
    lines.step_by(40).for_each(|l| {
        subset.push_str(l);
        subset.push('\n');
    });
    let path = dir.path().join("subset.csv");
    std::fs::write(&path, subset).expect("write");
    let mut s = settings(dir.path());
    s.search.index_events = true;
    let files = vec![
        sample("australia_bom_weather_stations.csv"),
        sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
        path,
    ];
    let service = open_async(s, files).await;
    wait_ready(&service).await;
    let index = Arc::clone(&service.search.as_ref().expect("search").index);
    assert_eq!(index.len() as u64, service.store.event_count());
    let answer = tokio::task::spawn_blocking(move || {
        index.search(
            "very intense fires in Victoria in September 2019 on dry windy days",
            10,
            Ranker::Hybrid,
            Constraints::default(),
            true,
        )
    })
    .await
    .expect("join")
    .expect("search");
    assert_eq!(answer.understood.region.as_deref(), Some("Victoria"));
    assert!(!answer.hits.is_empty(), "{answer:?}");
    for hit in &answer.hits {
        assert!(
            hit.title.contains("Victoria")
                && hit
                    .date
                    .as_deref()
                    .is_some_and(|d| d.starts_with("2019-09")),
            "{hit:?}"
        );
    }
    // Events stored after the build are followed into the index.
    let before = service.search.as_ref().expect("search").index.len();
    let extra = "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_t31,frp,daynight,type\n\
                 -37.81,144.2,330.1,1.2,1.1,2019-09-12,0412,Aqua,MODIS,88,6.3,300.2,140.5,D,0\n";
    let extra_path = dir.path().join("extra.csv");
    std::fs::write(&extra_path, extra).expect("write");
    let svc = Arc::clone(&service);
    tokio::task::spawn_blocking(move || svc.load(&[extra_path], false))
        .await
        .expect("join")
        .expect("load");
    let started = Instant::now();
    while service.search.as_ref().expect("search").index.len() == before {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the new event never reached the search index"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn historical_incidents_posted_over_http_are_stored_refused_with_reasons_and_searchable() {
    let dir = TempDir::new().expect("tempdir");
    let service = open_async(settings(dir.path()), Vec::new()).await;
    wait_ready(&service).await;
    let base = serve_all(&service).await;
    let export = std::fs::read_to_string(shared("incidents/calfire_mapdataall.csv")).expect("csv");
    let mut lines = export.lines();
    let header = lines.next().expect("header");
    let rows: Vec<&str> = lines.take(5).collect();
    // A sixth row: the first one again with its incident id blanked out.
    let first = csv::ReaderBuilder::new()
        .from_reader(format!("{header}\n{}\n", rows[0]).as_bytes())
        .into_records()
        .next()
        .expect("a record")
        .expect("parses");
    let (name, id) = (first[0].trim().to_owned(), first[15].to_owned());
    assert_eq!(id.len(), 36, "column 15 is incident_id: {id}");
    let broken = rows[0].replace(&id, "");
    let body = format!("{header}\n{}\n{broken}\n", rows.join("\n"));
    let client = reqwest::Client::new();
    let post = |body: String| {
        let client = client.clone();
        let url = format!("{base}/v1/historical-incidents");
        async move {
            let r = client
                .post(url)
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .expect("send");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (status, outcome) = post(body.clone()).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 5, "{outcome}");
    assert_eq!(outcome["rejected_total"], 1, "{outcome}");
    assert_eq!(outcome["rejected"][0]["field"], "incident_id", "{outcome}");
    assert_eq!(outcome["rejected"][0]["line"], 7, "{outcome}");
    // Sent again: nothing new, merged in place.
    let (_, again) = post(body).await;
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(5)),
        "{again}"
    );
    assert_eq!(
        service.store.dead_letter_count(),
        1,
        "the refusal is kept once"
    );
    // The incidents are searchable at once.
    let (status, found) = {
        let r = client
            .post(format!("{base}/v1/search"))
            .json(&json!({"query": name, "ranker": "bm25"}))
            .send()
            .await
            .expect("send");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    };
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"][0]["title"], name.as_str(), "{found}");
}
