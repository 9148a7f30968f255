//! Natural-language search over historical incidents and fire events: BM25 (tantivy) and
//! sentence vectors (all-MiniLM-L6-v2), fused by a weighted sum of normalised scores (or by
//! reciprocal rank), with filters read from the query.

mod gazetteer;
mod render;
mod synonyms;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Datelike};
use serde::{Deserialize, Serialize};
use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::query::QueryParser;
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, doc};

pub use firesight_core::query::{self, Understood, understand, understand_at};
pub use render::{event_text, incident_text, region_words};

use crate::embed::{EmbedError, SentenceEncoder};
use crate::event::{FireEventV2, HistoricalIncident};
use crate::store::{Store, StoreError};

/// Reciprocal-rank-fusion constant (the usual 60).
const RRF_K: f32 = 60.0;
/// Candidates each ranker contributes to the fusion.
const CANDIDATES: usize = 100;
/// Texts per sentence-encoder call while indexing.
const ENCODE_BATCH: usize = 32;
const TOKENIZER: &str = "firesight_en";

/// A search failure.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sentence encoder failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// tantivy failed.
    #[error("text index: {0}")]
    Text(#[from] tantivy::TantivyError),
    /// A lock was poisoned.
    #[error("search index lock poisoned")]
    Poisoned,
}

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// A historical incident (CAL FIRE).
    Incident,
    /// A fire detection (FireEventV2).
    Event,
}

/// One searchable document.
#[derive(Debug, Clone)]
pub struct Doc {
    /// Incident id or event id.
    pub id: String,
    /// Kind.
    pub kind: DocKind,
    /// Short title.
    pub title: String,
    /// The rendering that is indexed and embedded.
    pub text: String,
    /// Start (incident) or detection time, ms.
    pub time_ms: Option<i64>,
    /// Counties (incidents).
    pub counties: Vec<String>,
    /// Acres burned (incidents).
    pub acres: Option<f64>,
    /// Position.
    pub position: Option<(f64, f64)>,
    /// Region name from the position.
    pub region: &'static str,
    /// Where it was, in words (incidents' `location`): the places the gazetteer learns.
    pub location: String,
}

impl Doc {
    /// An incident's document.
    pub fn incident(i: &HistoricalIncident) -> Self {
        let region = match (i.latitude, i.longitude) {
            (Some(a), Some(o)) => region_words(a, o),
            _ => "California, United States",
        };
        Self {
            id: i.id.clone(),
            kind: DocKind::Incident,
            title: i.name.clone(),
            text: incident_text(i),
            time_ms: i.started_ms,
            counties: i.counties.clone(),
            acres: i.acres,
            position: i.latitude.zip(i.longitude),
            region,
            location: i.location.clone(),
        }
    }

    /// An event's document.
    pub fn event(e: &FireEventV2) -> Self {
        let region = region_words(e.location.latitude, e.location.longitude);
        let day = render::date_words(e.detection_time).unwrap_or_default();
        Self {
            id: e.event_id.clone(),
            kind: DocKind::Event,
            title: format!("{} detection, {region}, {day}", e.source.instrument),
            text: event_text(e),
            time_ms: Some(e.detection_time),
            counties: Vec::new(),
            acres: None,
            position: Some((e.location.latitude, e.location.longitude)),
            region,
            location: String::new(),
        }
    }
}

/// Filters given explicitly with a query (they add to what is understood from its text).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFilters {
    /// Only incidents or only events.
    pub kind: Option<DocKind>,
    /// Earliest time (RFC 3339 or YYYY-MM-DD).
    pub from: Option<String>,
    /// Latest time (RFC 3339 or YYYY-MM-DD).
    pub to: Option<String>,
    /// A California county.
    pub county: Option<String>,
    /// Smallest size in acres.
    pub min_acres: Option<f64>,
    /// Largest size in acres.
    pub max_acres: Option<f64>,
}

/// Which ranking to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ranker {
    /// BM25 and vectors fused as `search.fusion` says (by default a weighted sum of normalised
    /// scores, its weight tuned on a query set of its own).
    #[default]
    Hybrid,
    /// BM25 and vectors fused by reciprocal rank (k = 60), whatever `search.fusion` says.
    Rrf,
    /// BM25 only.
    Bm25,
    /// Sentence vectors only.
    Vector,
}

/// How the two rankers' lists become one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// `bm25_weight · bm25 + (1 − bm25_weight) · cosine`, each score min-max normalised over
    /// its ranker's candidates (a document the other ranker did not return scores 0 there).
    /// Bruch, Gai and Ingber (TOIS 2023) find such a blend, tuned on a few queries, ahead of RRF.
    Convex {
        /// BM25's share, in [0, 1].
        bm25_weight: f32,
    },
    /// Reciprocal rank: each list adds 1 / (60 + rank); ignores the scores.
    Rrf,
}

/// Every constraint a search applies, resolved.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    /// From the text.
    pub understood: Understood,
    /// Explicit kind.
    pub kind: Option<DocKind>,
    /// Explicit time range, ms.
    pub from_ms: Option<i64>,
    /// Explicit time range, ms.
    pub to_ms: Option<i64>,
    /// Explicit county.
    pub county: Option<String>,
    /// Explicit minimum acres.
    pub min_acres: Option<f64>,
    /// Explicit maximum acres.
    pub max_acres: Option<f64>,
}

impl Constraints {
    fn admits(&self, d: &Doc) -> bool {
        let u = &self.understood;
        let date = d
            .time_ms
            .and_then(DateTime::from_timestamp_millis)
            .map(|t| t.date_naive());
        let in_time = |from: Option<i64>, to: Option<i64>| match d.time_ms {
            Some(t) => from.is_none_or(|f| t >= f) && to.is_none_or(|x| t <= x),
            None => from.is_none() && to.is_none(),
        };
        let county_ok = |c: &str| d.counties.iter().any(|dc| dc.eq_ignore_ascii_case(c));
        self.kind.is_none_or(|k| k == d.kind)
            && in_time(self.from_ms, self.to_ms)
            && (u.years.is_empty() || date.is_some_and(|x| u.years.contains(&x.year())))
            && (u.months.is_empty() || date.is_some_and(|x| u.months.contains(&x.month())))
            && u.date
                .is_none_or(|want| date.is_some_and(|x| (x - want).num_days().abs() <= 3))
            && u.period
                .as_ref()
                .is_none_or(|p| date.is_some_and(|x| p.from <= x && x <= p.to))
            && (u.counties.is_empty()
                || u.counties.iter().any(|c| county_ok(c))
                // Counties read from a place are an inference: an incident whose county the
                // data does not give is not ruled out by it.
                || (!u.places.is_empty() && d.kind == DocKind::Incident && d.counties.is_empty()))
            && self.county.as_deref().is_none_or(county_ok)
            && u.region.as_deref().is_none_or(|r| d.region.contains(r))
            && acres_ok(
                d.acres,
                u.min_acres.or(self.min_acres),
                u.max_acres.or(self.max_acres),
            )
    }
}

fn acres_ok(acres: Option<f64>, min: Option<f64>, max: Option<f64>) -> bool {
    if min.is_none() && max.is_none() {
        return true;
    }
    acres.is_some_and(|a| min.is_none_or(|m| a >= m) && max.is_none_or(|m| a <= m))
}

/// One ranked answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hit {
    /// Incident id or event id.
    pub id: String,
    /// Incident or event.
    pub kind: DocKind,
    /// Title.
    pub title: String,
    /// The text that was matched.
    pub text: String,
    /// Fused (or single-ranker) score; higher is better.
    pub score: f32,
    /// Rank in the BM25 list (1-based), when it was in it.
    pub bm25_rank: Option<usize>,
    /// Rank in the vector list (1-based), when it was in it.
    pub vector_rank: Option<usize>,
    /// Start or detection date.
    pub date: Option<String>,
    /// Acres burned (incidents).
    pub acres: Option<f64>,
    /// Counties (incidents).
    pub counties: Vec<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
}

/// A search's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchAnswer {
    /// Best first.
    pub hits: Vec<Hit>,
    /// The ranker used.
    pub ranker: Ranker,
    /// Filters read from the query text.
    pub understood: Understood,
    /// Tokens of the query the sentence encoder saw.
    pub query_tokens: usize,
    /// True when the query ran past the sentence encoder's window (its tail was not embedded;
    /// BM25 still used all of it).
    pub truncated: bool,
    /// Anything the caller should know about how the query was handled.
    pub notes: Vec<String>,
    /// Documents that passed the filters.
    pub candidates: usize,
    /// Documents whose sentence vectors are still being computed (after a start or a bulk
    /// load); until 0, the vector ranker sees only the others, while BM25 sees all.
    pub pending_vectors: usize,
}

struct Docs {
    docs: Vec<Doc>,
    /// `dim` floats per document, zeros until it is embedded.
    vectors: Vec<f32>,
    /// Whether each document's sentence vector is in `vectors` yet.
    embedded: Vec<bool>,
    /// Documents not embedded yet.
    pending: usize,
    /// No document before this one is pending.
    first_pending: usize,
    /// The newest document's time (ms): what "last summer" is counted back from.
    latest_ms: Option<i64>,
    ids: HashSet<String>,
    /// Documents removed (their event was deleted at its source), by ord.
    removed: HashSet<usize>,
    /// The places the documents' locations name.
    gazetteer: gazetteer::Gazetteer,
}

/// The search index: documents, their text index and their vectors.
pub struct SearchIndex {
    encoder: Arc<SentenceEncoder>,
    store: Arc<Store>,
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    ord: Field,
    title: Field,
    body: Field,
    docs: RwLock<Docs>,
    fusion: Fusion,
}

impl SearchIndex {
    /// An empty index over an in-memory tantivy index; text vectors are cached in the store.
    /// `fusion` is how [`Ranker::Hybrid`] fuses.
    pub fn new(
        encoder: Arc<SentenceEncoder>,
        store: Arc<Store>,
        fusion: Fusion,
    ) -> Result<Self, SearchError> {
        let mut schema = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let ord = schema.add_u64_field("ord", FAST);
        let title = schema.add_text_field("title", text.clone());
        let body = schema.add_text_field("body", text);
        let index = Index::create_in_ram(schema.build());
        let mut analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .dynamic();
        if let Some(stop) = StopWordFilter::new(Language::English) {
            analyzer = analyzer.filter_dynamic(stop);
        }
        index.tokenizers().register(
            TOKENIZER,
            analyzer
                .filter_dynamic(Stemmer::new(Language::English))
                .build(),
        );
        let writer = index.writer_with_num_threads(1, 50_000_000)?;
        let reader = index.reader()?;
        Ok(Self {
            encoder,
            store,
            index,
            reader,
            writer: Mutex::new(writer),
            ord,
            title,
            body,
            docs: RwLock::new(Docs {
                docs: Vec::new(),
                vectors: Vec::new(),
                embedded: Vec::new(),
                pending: 0,
                first_pending: 0,
                latest_ms: None,
                gazetteer: gazetteer::Gazetteer::default(),
                ids: HashSet::new(),
                removed: HashSet::new(),
            }),
            fusion,
        })
    }

    /// The sentence encoder.
    pub fn encoder(&self) -> &SentenceEncoder {
        &self.encoder
    }

    /// Documents indexed.
    pub fn len(&self) -> usize {
        self.docs.read().map_or(0, |d| d.docs.len())
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds documents not yet indexed (by id) and embeds them before returning; returns how
    /// many were new.
    /// Only these documents are embedded here: a backlog still pending from start-up stays
    /// with the thread that works through it.
    pub fn add(&self, docs: Vec<Doc>) -> Result<usize, SearchError> {
        let added = self.append(docs)?;
        let count = added.len();
        self.embed(added)?;
        Ok(count)
    }

    /// Adds documents not yet indexed (by id) to the text index only: BM25 finds them at once,
    /// and the vector ranker once [`SearchIndex::embed_pending`] has reached them. Returns how
    /// many were new.
    pub fn add_text(&self, docs: Vec<Doc>) -> Result<usize, SearchError> {
        Ok(self.append(docs)?.len())
    }

    /// Appends the documents not yet indexed to the text index; returns their ords.
    fn append(&self, docs: Vec<Doc>) -> Result<Vec<usize>, SearchError> {
        let mut known = self.docs.write().map_err(|_| SearchError::Poisoned)?;
        let mut writer = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        let dim = self.encoder.dim();
        let mut added = Vec::new();
        for d in docs {
            if !known.ids.insert(d.id.clone()) {
                continue;
            }
            let ord = known.docs.len() as u64;
            writer.add_document(doc!(
                self.ord => ord,
                self.title => d.title.clone(),
                self.body => d.text.clone(),
            ))?;
            if let Some(t) = d.time_ms {
                known.latest_ms = Some(known.latest_ms.map_or(t, |l| l.max(t)));
            }
            known.gazetteer.add(&d.location, &d.counties);
            known.docs.push(d);
            known.vectors.extend(std::iter::repeat_n(0.0, dim));
            known.embedded.push(false);
            known.pending += 1;
            added.push(ord as usize);
        }
        if !added.is_empty() {
            writer.commit()?;
            self.reader.reload()?;
        }
        Ok(added)
    }

    /// Removes documents by id (events deleted at their source): no ranker returns them again,
    /// and the same id added later is a new document. Returns how many were removed.
    pub fn remove(&self, ids: &[String]) -> Result<usize, SearchError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut docs = self.docs.write().map_err(|_| SearchError::Poisoned)?;
        let mut removed = 0;
        for id in ids {
            if !docs.ids.remove(id) {
                continue;
            }
            let ords: Vec<usize> = docs
                .docs
                .iter()
                .enumerate()
                .filter(|(ord, d)| d.id == *id && !docs.removed.contains(ord))
                .map(|(ord, _)| ord)
                .collect();
            removed += ords.len();
            docs.removed.extend(ords);
        }
        Ok(removed)
    }

    /// Documents whose sentence vectors are still to be computed.
    pub fn pending_vectors(&self) -> usize {
        self.docs.read().map_or(0, |d| d.pending)
    }

    /// Embeds up to `limit` documents that lack a vector, oldest first (from the store's text
    /// vector cache where it has them); returns how many it embedded. The encoder runs without
    /// any lock held, so searches go on meanwhile.
    pub fn embed_pending(&self, limit: usize) -> Result<usize, SearchError> {
        let ords: Vec<usize> = {
            let docs = self.docs.read().map_err(|_| SearchError::Poisoned)?;
            (docs.first_pending..docs.docs.len())
                .filter(|&ord| !docs.embedded[ord])
                .take(limit)
                .collect()
        };
        self.embed(ords)
    }

    /// Computes (or reads from the cache) the vectors of the documents at `ords` that lack one;
    /// returns how many it set.
    fn embed(&self, ords: Vec<usize>) -> Result<usize, SearchError> {
        // (ord, cache key, text) of each document to embed.
        let work: Vec<(usize, String, String)> = {
            let docs = self.docs.read().map_err(|_| SearchError::Poisoned)?;
            ords.into_iter()
                .filter(|&ord| docs.embedded.get(ord) == Some(&false))
                .map(|ord| {
                    let d = &docs.docs[ord];
                    (ord, cache_key(d), d.text.clone())
                })
                .collect()
        };
        if work.is_empty() {
            return Ok(0);
        }
        let model = self.encoder.version().to_owned();
        let dim = self.encoder.dim();
        let mut done: Vec<(usize, Vec<f32>)> = Vec::with_capacity(work.len());
        for chunk in work.chunks(ENCODE_BATCH) {
            let mut missing = Vec::new();
            for (i, (_, key, _)) in chunk.iter().enumerate() {
                match self
                    .store
                    .text_vector(&model, key)?
                    .filter(|v| v.len() == dim)
                {
                    Some(v) => done.push((chunk[i].0, v)),
                    None => missing.push(i),
                }
            }
            if missing.is_empty() {
                continue;
            }
            let texts: Vec<&str> = missing.iter().map(|&i| chunk[i].2.as_str()).collect();
            let encoded = self.encoder.encode(&texts)?;
            let pairs: Vec<(&str, &[f32])> = missing
                .iter()
                .zip(&encoded)
                .map(|(&i, e)| (chunk[i].1.as_str(), e.vector.as_slice()))
                .collect();
            self.store.put_text_vectors(&model, &pairs)?;
            for (&i, e) in missing.iter().zip(encoded) {
                done.push((chunk[i].0, e.vector));
            }
        }
        let mut docs = self.docs.write().map_err(|_| SearchError::Poisoned)?;
        let count = done.len();
        for (ord, vector) in done {
            docs.vectors[ord * dim..(ord + 1) * dim].copy_from_slice(&vector);
            if !docs.embedded[ord] {
                docs.embedded[ord] = true;
                docs.pending -= 1;
            }
        }
        let start = docs.first_pending;
        docs.first_pending = (start..docs.docs.len())
            .find(|&ord| !docs.embedded[ord])
            .unwrap_or(docs.docs.len());
        Ok(count)
    }

    /// Answers a query. `k` is the number of hits; `understand` reads filters from the text.
    pub fn search(
        &self,
        query: &str,
        k: usize,
        ranker: Ranker,
        constraints: Constraints,
        understand_text: bool,
    ) -> Result<SearchAnswer, SearchError> {
        let fusion = match ranker {
            Ranker::Rrf => Fusion::Rrf,
            _ => self.fusion,
        };
        self.search_fused(query, k, ranker, fusion, constraints, understand_text)
    }

    /// [`SearchIndex::search`] with the fusion of [`Ranker::Hybrid`] given (the tuning sweep).
    pub fn search_fused(
        &self,
        query: &str,
        k: usize,
        ranker: Ranker,
        fusion: Fusion,
        mut constraints: Constraints,
        understand_text: bool,
    ) -> Result<SearchAnswer, SearchError> {
        let mut notes = Vec::new();
        if understand_text {
            let data_end = self
                .docs
                .read()
                .map_err(|_| SearchError::Poisoned)?
                .latest_ms
                .and_then(DateTime::from_timestamp_millis)
                .map(|t| t.date_naive());
            constraints.understood = understand_at(query, data_end);
            let u = &mut constraints.understood;
            if u.counties.is_empty() && constraints.county.is_none() {
                let docs = self.docs.read().map_err(|_| SearchError::Poisoned)?;
                u.places = docs.gazetteer.read(query);
                for county in u.places.iter().flat_map(|p| &p.counties) {
                    if !u.counties.contains(county) {
                        u.counties.push(county.clone());
                    }
                }
            }
            if let (Some(p), Some(end)) = (&constraints.understood.period, data_end)
                && p.relative
            {
                notes.push(format!(
                    "`{}` was read as {} to {}, counted back from the newest day in the data \
                     ({end}), not from today",
                    p.said, p.from, p.to
                ));
            }
        }
        if mostly_non_latin(query) {
            notes.push(
                "the query is mostly in a non-Latin script; the sentence encoder and the BM25 \
                 stemmer are English-only, so matches may be weak"
                    .to_owned(),
            );
        }
        let encoded = self
            .encoder
            .encode(&[query])?
            .pop()
            .ok_or(SearchError::Embed(EmbedError::Inference(
                "no vector".into(),
            )))?;
        if encoded.truncated {
            notes.push(format!(
                "the query is longer than the sentence encoder's window of {} tokens; only its \
                 beginning was embedded (BM25 used all of it)",
                self.encoder.max_tokens()
            ));
        }
        let docs = self.docs.read().map_err(|_| SearchError::Poisoned)?;
        let allowed: Arc<Vec<bool>> = Arc::new(
            docs.docs
                .iter()
                .enumerate()
                .map(|(ord, d)| !docs.removed.contains(&ord) && constraints.admits(d))
                .collect(),
        );
        let candidates = allowed.iter().filter(|a| **a).count();
        let bm25 = if ranker == Ranker::Vector {
            Vec::new()
        } else if understand_text {
            self.bm25(&synonyms::expand(query), &allowed)?
        } else {
            self.bm25(query, &allowed)?
        };
        let vector = if ranker == Ranker::Bm25 {
            Vec::new()
        } else {
            vector_ranking(
                &docs.vectors,
                self.encoder.dim(),
                &encoded.vector,
                &allowed,
                &docs.embedded,
            )
        };
        let pending_vectors = docs.pending;
        if pending_vectors > 0 && ranker != Ranker::Bm25 {
            notes.push(format!(
                "sentence vectors are still being computed for {pending_vectors} of {} \
                 documents; until they are, the vector ranking covers only the rest (BM25 \
                 covers all)",
                docs.docs.len()
            ));
        }
        let fused: Vec<(u32, f32)> = match ranker {
            Ranker::Bm25 => bm25.clone(),
            Ranker::Vector => vector.clone(),
            Ranker::Hybrid | Ranker::Rrf => match fusion {
                Fusion::Convex { bm25_weight } => convex(&bm25, &vector, bm25_weight),
                Fusion::Rrf => rrf(&[&bm25, &vector]),
            },
        };
        let mut fused = fused;
        if constraints.understood.largest {
            // Stable: equal sizes keep the fused order.
            let acres = |ord: u32| docs.docs.get(ord as usize).and_then(|d| d.acres);
            fused.sort_by(|a, b| {
                acres(b.0)
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&acres(a.0).unwrap_or(f64::NEG_INFINITY))
            });
        }
        let rank_in =
            |list: &[(u32, f32)], ord: u32| list.iter().position(|(o, _)| *o == ord).map(|p| p + 1);
        let hits = fused
            .into_iter()
            .take(k)
            .filter_map(|(ord, score)| {
                let d = docs.docs.get(ord as usize)?;
                Some(Hit {
                    id: d.id.clone(),
                    kind: d.kind,
                    title: d.title.clone(),
                    text: d.text.clone(),
                    score,
                    bm25_rank: rank_in(&bm25, ord),
                    vector_rank: rank_in(&vector, ord),
                    date: d
                        .time_ms
                        .and_then(DateTime::from_timestamp_millis)
                        .map(|t| t.date_naive().to_string()),
                    acres: d.acres,
                    counties: d.counties.clone(),
                    latitude: d.position.map(|p| p.0),
                    longitude: d.position.map(|p| p.1),
                })
            })
            .collect::<Vec<_>>();
        if hits.is_empty() && !constraints.understood.is_empty() {
            notes.push(
                "nothing matched the filters read from the query (see `understood`); send \
                 \"understand\": false to search without them"
                    .to_owned(),
            );
        }
        Ok(SearchAnswer {
            hits,
            ranker,
            understood: constraints.understood,
            query_tokens: encoded.tokens,
            truncated: encoded.truncated,
            notes,
            candidates,
            pending_vectors,
        })
    }

    fn bm25(&self, query: &str, allowed: &Arc<Vec<bool>>) -> Result<Vec<(u32, f32)>, SearchError> {
        let mut parser = QueryParser::for_index(&self.index, vec![self.title, self.body]);
        parser.set_field_boost(self.title, 2.0);
        // Lenient: a question is not query syntax; quotes, colons and brackets are just text.
        let cleaned: String = query
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect();
        let (parsed, _) = parser.parse_query_lenient(&cleaned);
        let searcher = self.reader.searcher();
        let mask = Arc::clone(allowed);
        let collector = FilterCollector::new(
            "ord".to_owned(),
            move |ord: u64| mask.get(ord as usize).copied().unwrap_or(false),
            TopDocs::with_limit(CANDIDATES),
        );
        let top = searcher.search(&parsed, &collector)?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let column = searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .u64("ord")?;
            if let Some(ord) = column.first(address.doc_id) {
                out.push((ord as u32, score));
            }
        }
        Ok(out)
    }
}

/// The text-vector cache key: the document id and a digest of its text, so a document whose
/// text changed (an incident merged with the other export) is embedded again.
fn cache_key(d: &Doc) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(d.text.as_bytes());
    format!("{}#{}", d.id, hex::encode(&digest[..8]))
}

/// Exact inner-product search over unit vectors (cosine), restricted to allowed documents.
fn vector_ranking(
    vectors: &[f32],
    dim: usize,
    query: &[f32],
    allowed: &[bool],
    embedded: &[bool],
) -> Vec<(u32, f32)> {
    let mut scored: Vec<(u32, f32)> = vectors
        .chunks_exact(dim)
        .enumerate()
        .filter(|(i, _)| allowed.get(*i).copied().unwrap_or(false))
        .filter(|(i, _)| embedded.get(*i).copied().unwrap_or(false))
        .map(|(i, v)| (i as u32, v.iter().zip(query).map(|(a, b)| a * b).sum()))
        .collect();
    let keep = CANDIDATES.min(scored.len());
    if keep == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1));
    scored.truncate(keep);
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
}

/// Convex fusion: `bm25_weight` times BM25's min-max normalised score plus the rest times the
/// vector ranker's; a document missing from one list gets 0 from it (it scored below that
/// list's last candidate).
fn convex(bm25: &[(u32, f32)], vector: &[(u32, f32)], bm25_weight: f32) -> Vec<(u32, f32)> {
    let mut scores: std::collections::HashMap<u32, f32> = std::collections::HashMap::new();
    for (list, weight) in [(bm25, bm25_weight), (vector, 1.0 - bm25_weight)] {
        let (low, high) = list
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
                (lo.min(s.1), hi.max(s.1))
            });
        let span = high - low;
        for (ord, score) in list {
            // One candidate, or all alike: each is the list's best.
            let normalised = if span > 0.0 {
                (score - low) / span
            } else {
                1.0
            };
            *scores.entry(*ord).or_default() += weight * normalised;
        }
    }
    let mut fused: Vec<(u32, f32)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

/// Reciprocal rank fusion: each list adds 1 / (60 + rank).
fn rrf(lists: &[&[(u32, f32)]]) -> Vec<(u32, f32)> {
    let mut scores: std::collections::HashMap<u32, f32> = std::collections::HashMap::new();
    for list in lists {
        for (rank, (ord, _)) in list.iter().enumerate() {
            *scores.entry(*ord).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(u32, f32)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

fn mostly_non_latin(text: &str) -> bool {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let latin = letters
        .iter()
        .filter(|c| c.is_ascii_alphabetic() || ('\u{00C0}'..='\u{024F}').contains(*c))
        .count();
    !letters.is_empty() && latin * 2 < letters.len()
}

/// The search index and whether its first build has finished.
pub struct SearchState {
    /// The index.
    pub index: Arc<SearchIndex>,
    /// True once every stored incident (and event, with `search.index_events`) is in it.
    pub ready: std::sync::atomic::AtomicBool,
    /// Why the build stopped, if it failed.
    pub failure: std::sync::Mutex<Option<String>>,
    /// Longest query accepted, bytes.
    pub max_query_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_prefers_documents_both_rankers_like() {
        let a = [(1, 9.0), (2, 8.0), (3, 7.0)];
        let b = [(3, 0.9), (4, 0.8), (1, 0.7)];
        let fused = rrf(&[&a, &b]);
        let order: Vec<u32> = fused.iter().map(|f| f.0).collect();
        assert_eq!(order[..2], [1, 3]);
        assert_eq!(order.len(), 4);
    }

    #[test]
    fn convex_fusion_weighs_score_gaps_that_rank_fusion_ignores() {
        // BM25 is sure of 1 (far ahead); the vectors barely prefer 2 over 1.
        let bm25 = [(1, 30.0), (2, 10.0), (3, 9.0)];
        let vector = [(2, 0.62), (1, 0.61), (4, 0.20)];
        let order = |fused: Vec<(u32, f32)>| fused.iter().map(|f| f.0).collect::<Vec<_>>();
        assert_eq!(order(convex(&bm25, &vector, 0.5))[..2], [1, 2]);
        assert_eq!(order(convex(&bm25, &vector, 1.0))[..3], [1, 2, 3]);
        assert_eq!(order(convex(&bm25, &vector, 0.0))[..2], [2, 1]);
        // Rank fusion sees only ranks: 1 and 2 tie, broken by id.
        let fused = rrf(&[&bm25, &vector]);
        assert_eq!(fused[0].1, fused[1].1);
        // A document one list lacks gets nothing from it; a lone candidate is its list's best.
        let lone = convex(&[(7, 3.0)], &[], 0.4);
        assert_eq!(lone, vec![(7, 0.4)]);
        let fused = convex(&bm25, &vector, 0.5);
        let four = fused.iter().find(|f| f.0 == 4).expect("4").1;
        assert_eq!(
            four, 0.0,
            "the vector list's last candidate, absent from BM25's"
        );
    }

    #[test]
    fn a_changed_text_is_a_new_cache_entry() {
        let incident = HistoricalIncident {
            id: "u1".into(),
            name: "Camp Fire".into(),
            counties: vec!["Butte".into()],
            location: String::new(),
            acres: Some(153_336.0),
            started_ms: Some(1_541_680_000_000),
            extinguished_ms: None,
            latitude: None,
            longitude: None,
            admin_unit: String::new(),
            description: String::new(),
            structures_destroyed: None,
            fatalities: None,
        };
        let mut merged = incident.clone();
        merged.merge(HistoricalIncident {
            description: "The Camp Fire destroyed Paradise.".into(),
            counties: vec!["Plumas".into()],
            ..incident.clone()
        });
        assert_eq!(merged.counties, ["Butte", "Plumas"]);
        let (before, after) = (Doc::incident(&incident), Doc::incident(&merged));
        assert_eq!(cache_key(&before), cache_key(&Doc::incident(&incident)));
        assert_ne!(cache_key(&before), cache_key(&after));
        assert!(cache_key(&before).starts_with("u1#"));
    }

    #[test]
    fn script_detection() {
        assert!(mostly_non_latin("火災 カリフォルニア 2018"));
        assert!(!mostly_non_latin(
            "incendio forestal en el condado de Los Ángeles"
        ));
    }
}
