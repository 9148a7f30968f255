//! The as-of weather join on the real BOM station list: each detection meets the latest
//! observation at or before it, within the maximum age, whatever order the observations came in.

use chrono::{DateTime, Utc};
use firesight::app::Service;
use firesight::event::{FireDetection, WeatherObservation, WeatherStatus};
use firesight::stream::decode::StationDecoder;

use super::support::{decode_file, get_json, open, open_async, sample, serve_all, settings};

/// Sydney (Observatory Hill) and Sydney Airport, about 10 km apart.
const OBSERVATORY_HILL: u32 = 66_062;
const AIRPORT: u32 = 66_037;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("RFC 3339")
}

fn station_position(id: u32) -> (f64, f64) {
    decode_file::<StationDecoder>(&sample("australia_bom_weather_stations.csv"))
        .into_iter()
        .filter_map(|d| d.ok().map(|(_, station)| station))
        .find(|s| s.id == id)
        .map(|s| (s.latitude, s.longitude))
        .expect("station listed")
}

/// A point observation whose maximum temperature marks which one was joined.
fn observation(station: u32, observed_at: &str, marker: f64) -> WeatherObservation {
    let observed_at = at(observed_at);
    WeatherObservation {
        station_id: station,
        station_name: String::new(),
        date: firesight::geo::local_day(observed_at, station_position(station).1),
        min_temp_c: None,
        max_temp_c: Some(marker),
        rain_mm: None,
        max_gust_kmh: None,
        temp_9am_c: None,
        rh_9am_pct: None,
        wind_9am_kmh: None,
        temp_3pm_c: None,
        rh_3pm_pct: None,
        wind_3pm_kmh: None,
        wind_dir_3pm: None,
        mslp_3pm_hpa: None,
        observed_at: Some(observed_at),
    }
}

fn detection(position: (f64, f64), acquired_at: &str) -> FireDetection {
    serde_json::from_value(serde_json::json!({
        "latitude": position.0, "longitude": position.1, "acquired_at": acquired_at,
        "satellite": "Terra", "instrument": "MODIS", "brightness_k": 330.5,
        "brightness_background_k": 295.1, "scan_km": 1.0, "track_km": 1.0,
        "confidence_percent": 80.0, "confidence": "high", "frp_mw": 25.3, "daytime": true,
        "version": "6.3", "detection_type": 0
    }))
    .expect("detection")
}

/// A join's status and, if matched, `(station, marker, age in hours)`.
type Joined = (WeatherStatus, Option<(i64, f64, f64)>);

/// The join for a detection at `position` and `when`.
fn join(service: &Service, position: (f64, f64), when: &str) -> Joined {
    let event = service
        .pipeline
        .enrich(&detection(position, when))
        .expect("enriched");
    let joined = event
        .weather_conditions
        .map(|w| (w.station_id, w.max_temp_c.expect("marker"), w.age_hours));
    (event.weather_status.expect("status"), joined)
}

fn ingest(service: &Service, observations: Vec<WeatherObservation>) -> (u64, Vec<String>) {
    let batch = observations.into_iter().enumerate();
    let outcome = service
        .pipeline
        .ingest_weather("test", batch.map(|(i, o)| (i as u64 + 1, o)).collect())
        .expect("ingest");
    let refused = outcome
        .rejected
        .iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect();
    (outcome.accepted, refused)
}

#[test]
fn a_detection_joins_the_latest_observation_at_or_before_it_within_the_maximum_age() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = open(dir.path(), &[sample("australia_bom_weather_stations.csv")]);
    let hill = station_position(OBSERVATORY_HILL);
    assert_eq!(
        join(&service, hill, "2019-11-12T05:00:00Z"),
        (WeatherStatus::NoReportingStation, None),
        "stations in range, but none has ever reported"
    );
    let (accepted, refused) = ingest(
        &service,
        vec![
            observation(OBSERVATORY_HILL, "2019-11-12T00:00:00Z", 20.0),
            observation(OBSERVATORY_HILL, "2019-11-12T06:00:00Z", 26.0),
        ],
    );
    assert_eq!((accepted, refused.len()), (2, 0), "{refused:?}");

    // Observatory Hill reports now, but nothing at or before these instants.
    let none = (WeatherStatus::NoRecentObservation, None);
    let matched = |marker: f64, age: f64| {
        (
            WeatherStatus::Matched,
            Some((i64::from(OBSERVATORY_HILL), marker, age)),
        )
    };
    let expect = |cases: &[(&str, Joined)]| {
        for (when, expected) in cases {
            assert_eq!(&join(&service, hill, when), expected, "detection at {when}");
        }
    };
    expect(&[
        // Before the first observation: the area has stations, the weather has not arrived.
        ("2019-11-11T23:59:00Z", none),
        ("2019-11-12T05:59:00Z", matched(20.0, 5.98)),
        // "At or before" includes the same millisecond.
        ("2019-11-12T06:00:00Z", matched(26.0, 0.0)),
        // The default maximum age is 24 hours: exactly 24 h joins, a minute more does not.
        ("2019-11-13T06:00:00Z", matched(26.0, 24.0)),
        (
            "2019-11-13T06:01:00Z",
            (WeatherStatus::StaleObservation, None),
        ),
    ]);

    // An observation that arrives late, out of time order, becomes the version it belongs to.
    let late = observation(OBSERVATORY_HILL, "2019-11-12T03:00:00Z", 23.0);
    assert_eq!(ingest(&service, vec![late]).0, 1);
    expect(&[
        ("2019-11-12T05:59:00Z", matched(23.0, 2.98)),
        ("2019-11-12T02:59:00Z", matched(20.0, 2.98)),
    ]);

    // The nearest station with a recent observation wins over a nearer one whose latest is stale.
    ingest(
        &service,
        vec![observation(AIRPORT, "2019-11-14T00:00:00Z", 30.0)],
    );
    let (status, joined) = join(&service, hill, "2019-11-14T01:00:00Z");
    assert_eq!(status, WeatherStatus::Matched);
    assert_eq!(joined.map(|j| (j.0, j.1)), Some((i64::from(AIRPORT), 30.0)));

    // Far from every station with weather (the Coral Sea).
    assert_eq!(
        join(&service, (-17.0, 155.0), "2019-11-12T05:00:00Z"),
        (WeatherStatus::NoStationInRange, None)
    );
}

#[test]
fn point_observations_are_refused_when_their_time_and_day_disagree_or_conflict() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = open(dir.path(), &[sample("australia_bom_weather_stations.csv")]);
    let mut wrong_day = observation(OBSERVATORY_HILL, "2019-11-12T06:00:00Z", 26.0);
    wrong_day.date = wrong_day.date.pred_opt().expect("day before");
    let (accepted, refused) = ingest(&service, vec![wrong_day]);
    assert_eq!(accepted, 0);
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].contains("observed_at") && refused[0].contains("not on `date`"),
        "{refused:?}"
    );

    let first = observation(OBSERVATORY_HILL, "2019-11-12T06:00:00Z", 26.0);
    assert_eq!(ingest(&service, vec![first.clone()]).0, 1);
    // The same observation again is a duplicate; different values at the same instant conflict.
    let (accepted, refused) = ingest(
        &service,
        vec![
            first,
            observation(OBSERVATORY_HILL, "2019-11-12T06:00:00Z", 27.0),
        ],
    );
    assert_eq!(accepted, 0);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains("already has a different observation"),
        "{refused:?}"
    );
}

#[test]
fn a_daily_summary_is_valid_from_the_station_s_local_midnight_for_one_day() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = open(dir.path(), &[sample("australia_bom_weather_stations.csv")]);
    let hill = station_position(OBSERVATORY_HILL);
    let mut daily = observation(OBSERVATORY_HILL, "2019-11-12T03:00:00Z", 24.0);
    daily.observed_at = None;
    assert_eq!(daily.date.to_string(), "2019-11-12");
    assert_eq!(ingest(&service, vec![daily.clone()]).0, 1);
    // Local solar midnight at 151.205° E is 13:55:11 UTC the day before.
    let midnight = daily.valid_from(hill.1);
    assert_eq!(midnight, at("2019-11-11T13:55:11Z"));
    let before = (midnight - chrono::Duration::seconds(1)).to_rfc3339();
    assert_eq!(
        join(&service, hill, &before),
        (WeatherStatus::NoRecentObservation, None)
    );
    let (status, joined) = join(&service, hill, &midnight.to_rfc3339());
    assert_eq!(status, WeatherStatus::Matched);
    // A daily summary's age is counted from its 3 pm reading, as the encoder was trained.
    assert_eq!(joined.map(|j| j.2), Some(-15.0));
    let last = (midnight + chrono::Duration::hours(24)).to_rfc3339();
    assert_eq!(join(&service, hill, &last).0, WeatherStatus::Matched);
    let after =
        (midnight + chrono::Duration::hours(24) + chrono::Duration::seconds(1)).to_rfc3339();
    assert_eq!(
        join(&service, hill, &after),
        (WeatherStatus::StaleObservation, None)
    );
}

/// The daily summaries of one station in the bundled weather file, decoded as the service does.
fn daily_summaries(station: u32) -> Vec<WeatherObservation> {
    decode_file::<firesight::stream::decode::WeatherDecoder>(&sample(
        "australia_bom_daily_weather_2019-05_2020-06.csv",
    ))
    .into_iter()
    .filter_map(|d| d.ok().map(|(_, obs)| obs))
    .filter(|obs| obs.station_id == station)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_station_has_a_fire_weather_series_that_joins_its_detections_and_follows_late_days() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let files = vec![
        sample("australia_bom_weather_stations.csv"),
        sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
    ];
    let service = open_async(settings(dir.path()), files).await;
    let base = serve_all(&service).await;

    // Which stations report: 25 of the 714 listed (three more in the file are not listed, and
    // are dead-lettered; `python3 scripts/weather_coverage.py` counts the same).
    let (status, list) = get_json(&format!("{base}/v1/stations")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        (list["stations"].as_u64(), list["reporting"].as_u64()),
        (Some(714), Some(25))
    );
    let (_, reporting) = get_json(&format!("{base}/v1/stations?reporting=true")).await;
    let items = reporting["items"].as_array().expect("items");
    assert_eq!(items.len(), 25);
    assert!(
        items
            .iter()
            .all(|s| s["reporting"] == true && s["observations"].as_u64() > Some(300))
    );

    // The series as served equals the system run over the station's own complete days, with
    // its gaps (a missing 3 pm reading or rain total) carried or restarted as documented.
    let hill = station_position(OBSERVATORY_HILL);
    let expected: Vec<_> = firesight::fwi::series(
        daily_summaries(OBSERVATORY_HILL)
            .iter()
            .filter_map(|obs| obs.noon_weather(hill.0).map(|w| (obs.date, w))),
    )
    .iter()
    .map(firesight::event::FireWeather::of)
    .collect();
    assert!(expected.len() > 300, "{} days", expected.len());
    let url = format!("{base}/v1/stations/{OBSERVATORY_HILL}/fire-weather");
    let (status, body) = get_json(&url).await;
    assert_eq!(status, 200, "{body}");
    let served: Vec<firesight::event::FireWeather> =
        serde_json::from_value(body["days"].clone()).expect("days");
    assert_eq!(served, expected);
    // Sydney before the Black Summer: by mid-November 2019 the deep layers are dry (a DC in the
    // hundreds) after a dry winter, and the series has run long enough to mean it.
    let (_, november) = get_json(&format!("{url}?from=2019-11-12&to=2019-11-12")).await;
    let day = &november["days"][0];
    assert!(day["dc"].as_f64() > Some(200.0), "{november}");
    assert!(day["days_in_series"].as_i64() > Some(100), "{november}");

    // A detection that joins Observatory Hill's summary carries that day's codes beside it.
    let event = service
        .pipeline
        .enrich(&detection(hill, "2019-11-12T03:00:00Z"))
        .expect("enriched");
    let weather = event.weather_conditions.expect("joined");
    assert_eq!(weather.station_id, i64::from(OBSERVATORY_HILL));
    let joined = weather.fire_weather.expect("fire weather joined");
    assert_eq!(joined.date, "2019-11-12");
    assert_eq!(
        serde_json::to_value(&joined).expect("json"),
        november["days"][0]
    );

    // Errors name the parameter; an unknown station is a 404.
    let (status, body) = get_json(&format!("{url}?from=2019-12-01&to=2019-11-01")).await;
    assert_eq!(
        (status.as_u16(), body["error"]["field"].as_str()),
        (400, Some("from"))
    );
    let (status, _) = get_json(&format!("{base}/v1/stations/999999/fire-weather")).await;
    assert_eq!(status, 404);
}

#[test]
fn a_late_day_recomputes_every_day_after_it() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = open(dir.path(), &[sample("australia_bom_weather_stations.csv")]);
    let mut days = daily_summaries(OBSERVATORY_HILL);
    days.retain(|d| d.date.to_string().starts_with("2019-11"));
    let series = |service: &Service| {
        service.pipeline.read_correlator(|c| {
            c.fire_weather_between(
                OBSERVATORY_HILL,
                chrono::NaiveDate::MIN,
                chrono::NaiveDate::MAX,
            )
        })
    };
    // Every day of November 2019 but the 10th, then the 10th (a wet day) a day late.
    let tenth = days
        .iter()
        .position(|d| d.date.to_string() == "2019-11-10")
        .expect("10th");
    let mut late = days.remove(tenth);
    late.rain_mm = Some(40.0);
    let (accepted, refused) = ingest(&service, days);
    assert_eq!((accepted, refused.as_slice()), (29, &[][..]));
    let before = series(&service);
    // Four of those days lack a 3 pm reading or a rain total: gaps the codes carry across.
    assert_eq!(before.len(), 25);
    assert_eq!(ingest(&service, vec![late]).0, 1);
    let after = series(&service);
    assert_eq!(after.len(), 26);
    let on = |s: &[firesight::event::FireWeather], day: &str| {
        s.iter().find(|d| d.date == day).cloned().expect(day)
    };
    // The codes before the 10th stand; 40 mm on the 10th wets the duff, and every later day
    // starts from wetter fuels than it did.
    assert_eq!(on(&before, "2019-11-09"), on(&after, "2019-11-09"));
    for day in ["2019-11-11", "2019-11-20", "2019-11-30"] {
        assert!(on(&after, day).dmc < on(&before, day).dmc, "{day}");
    }
}

/// Observatory Hill's daily summaries from the 1st to the 12th of November 2019, the 12th
/// apart: the day that arrives late.
fn november_days() -> (Vec<WeatherObservation>, WeatherObservation) {
    let mut days = daily_summaries(OBSERVATORY_HILL);
    days.retain(|d| ("2019-11-01".."2019-11-13").contains(&d.date.to_string().as_str()));
    let twelfth = days.pop().expect("days");
    assert_eq!(twelfth.date.to_string(), "2019-11-12");
    (days, twelfth)
}

async fn post_ndjson<T: serde::Serialize>(url: &str, items: &[T]) -> serde_json::Value {
    let body: String = items
        .iter()
        .map(|item| serde_json::to_string(item).expect("json") + "\n")
        .collect();
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// A detection processed before its day's weather arrived gets it when the weather comes: on
/// the satellite path this is the rule, since a station's daily summary is published the next
/// morning. The late day re-joins the detections it reaches (and only those), re-applies the
/// rules, re-predicts and re-embeds them, and stores each as revision 1 in place; the index
/// serves the new vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weather_that_arrives_a_day_late_rejoins_the_detections_it_reaches() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let files = vec![sample("australia_bom_weather_stations.csv")];
    let service = open_async(settings(dir.path()), files).await;
    let base = serve_all(&service).await;
    let (days, twelfth) = november_days();
    let posted = post_ndjson(&format!("{base}/v1/events/weather"), &days).await;
    assert_eq!(
        posted["accepted"].as_u64(),
        Some(days.len() as u64),
        "{posted}"
    );

    let hill = station_position(OBSERVATORY_HILL);
    let detections = [
        // On the 12th at 2 pm Sydney time: the 11th's summary is too old by then.
        detection(hill, "2019-11-12T03:00:00Z"),
        // On the 5th: joined already, and out of the late day's reach.
        detection(hill, "2019-11-05T03:00:00Z"),
        // The Coral Sea on the 12th: no station in range, before or after.
        detection((-17.0, 155.0), "2019-11-12T03:00:00Z"),
    ];
    let ids: Vec<String> = detections.iter().map(FireDetection::event_id).collect();
    let posted = post_ndjson(&format!("{base}/v1/events/firms"), &detections).await;
    assert_eq!(posted["accepted"].as_u64(), Some(3), "{posted}");
    let fire = |id: &str| {
        let url = format!("{base}/v1/fires/{id}");
        async move {
            let (status, body) = get_json(&url).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let before: Vec<serde_json::Value> =
        futures_util::future::join_all(ids.iter().map(|id| fire(id))).await;
    assert_eq!(
        before[0]["weather_status"], "stale_observation",
        "{}",
        before[0]
    );
    assert_eq!(before[1]["weather_status"], "matched");
    assert_eq!(before[2]["weather_status"], "no_station_in_range");
    assert!(before.iter().all(|e| e.get("revision").is_none()));

    // The 12th's summary, a day late.
    let posted = post_ndjson(
        &format!("{base}/v1/events/weather"),
        std::slice::from_ref(&twelfth),
    )
    .await;
    assert_eq!(posted["accepted"].as_u64(), Some(1), "{posted}");
    let after: Vec<serde_json::Value> =
        futures_util::future::join_all(ids.iter().map(|id| fire(id))).await;
    let rejoined = &after[0];
    assert_eq!(rejoined["weather_status"], "matched", "{rejoined}");
    assert_eq!(rejoined["revision"], 1);
    let weather = &rejoined["weather_conditions"];
    assert_eq!(weather["station_id"], i64::from(OBSERVATORY_HILL));
    assert_eq!(weather["observation_date"], "2019-11-12");
    assert_eq!(weather["max_temp_c"].as_f64(), twelfth.max_temp_c);
    assert_eq!(weather["fire_weather"]["date"], "2019-11-12");
    // The rules ran again (a dry day: no anomaly, but an assessment now there is weather), and
    // the models saw the weather: their outputs changed.
    assert!(before[0]["impact_assessment"].is_null());
    assert!(
        rejoined["impact_assessment"]["anomalies"].is_array(),
        "{rejoined}"
    );
    assert_ne!(rejoined["ml_predictions"], before[0]["ml_predictions"]);
    // Everything but the join, the rules, the predictions and the revision is as it was.
    let mut unchanged = rejoined.clone();
    for field in [
        "weather_status",
        "weather_conditions",
        "impact_assessment",
        "ml_predictions",
        "revision",
    ] {
        unchanged[field] = before[0][field].clone();
    }
    unchanged
        .as_object_mut()
        .expect("object")
        .remove("revision");
    assert_eq!(unchanged, before[0]);
    // The others are untouched.
    assert_eq!(after[1], before[1]);
    assert_eq!(after[2], before[2]);
    // A GIS client sees the revision and the codes as attribute columns.
    let (_, feature) = get_json(&format!("{base}/v1/fires/{}?f=geojson", ids[0])).await;
    let properties = &feature["properties"];
    assert_eq!(
        (
            properties["revision"].as_i64(),
            properties["weather_status"].as_str()
        ),
        (Some(1), Some("matched")),
        "{feature}"
    );
    assert!(properties["ffmc"].is_number(), "{feature}");

    // The stored vector is the encoder's for the revised record, and the index serves it.
    let pipeline = &service.pipeline;
    let event = service.store.event(&ids[0]).expect("read").expect("stored");
    let seq = service.store.seq_of(&ids[0]).expect("read").expect("seq");
    let expected = pipeline
        .embed(std::slice::from_ref(&event))
        .expect("embed")
        .remove(0);
    let model = event.model_version.clone().expect("model");
    let stored = service
        .store
        .vector(seq, &model)
        .expect("read")
        .expect("vector");
    assert_eq!(stored.vector, expected);
    let nearest = pipeline.space().index.search(&expected, 1).expect("search");
    assert_eq!(nearest[0].seq, seq);
    assert!(nearest[0].distance < 1e-9, "{nearest:?}");

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("firesight_correlate_rejoins_total{status=\"matched\"} 1"),
        "{metrics}"
    );
    // The three detections came in one small body: one write in the live lane.
    assert!(
        metrics.contains("firesight_writer_wait_seconds_count{lane=\"live\"} 1\n"),
        "{metrics}"
    );
    // Each record POSTed is timed from its body's arrival until stored and indexed, once.
    assert!(
        metrics
            .contains("firesight_ingest_latency_seconds_count{kind=\"firms\",path=\"http\"} 3\n"),
        "{metrics}"
    );
    let weather = format!(
        "firesight_ingest_latency_seconds_count{{kind=\"weather\",path=\"http\"}} {}\n",
        days.len() + 1
    );
    assert!(metrics.contains(&weather), "{metrics}");

    // The same day sent again is a duplicate and revises nothing.
    let posted = post_ndjson(&format!("{base}/v1/events/weather"), &[twelfth]).await;
    assert_eq!(posted["duplicates"].as_u64(), Some(1), "{posted}");
    assert_eq!(fire(&ids[0]).await, after[0]);
}

/// An index snapshot written before a re-join is brought up to date at the next start: the
/// revised event's point is inserted again with its new vector.
#[test]
fn a_snapshot_from_before_a_rejoin_serves_the_revised_vector_after_a_restart() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let (days, twelfth) = november_days();
    let hill = station_position(OBSERVATORY_HILL);
    let late = detection(hill, "2019-11-12T03:00:00Z");
    let id = late.event_id();
    {
        let service = open(dir.path(), &[sample("australia_bom_weather_stations.csv")]);
        ingest(&service, days);
        // Neighbours for the graph, so the revised point has links to be found through.
        let others: Vec<_> = (0..40)
            .map(|i| {
                let at = format!("2019-11-{:02}T03:00:00Z", 1 + i % 11);
                (
                    i as u64,
                    detection((hill.0 + f64::from(i) * 0.01, hill.1), &at),
                )
            })
            .chain([(99, late)])
            .collect();
        service
            .pipeline
            .ingest_detections(others)
            .expect("detections");
        assert!(service.save_index().expect("snapshot"));
        assert_eq!(ingest(&service, vec![twelfth]).0, 1);
        let event = service.store.event(&id).expect("read").expect("stored");
        assert_eq!(event.revision, Some(1));
    }
    let service = open(dir.path(), &[]);
    let event = service.store.event(&id).expect("read").expect("stored");
    let seq = service.store.seq_of(&id).expect("read").expect("seq");
    let vector = service.pipeline.embed(&[event]).expect("embed").remove(0);
    let nearest = service
        .pipeline
        .space()
        .index
        .search(&vector, 1)
        .expect("search");
    assert_eq!(nearest[0].seq, seq);
    assert!(nearest[0].distance < 1e-9, "{nearest:?}");
}

/// Every stored event's weather status, by id.
fn statuses(service: &Service) -> std::collections::HashMap<String, String> {
    service
        .store
        .events_between(i64::MIN, i64::MAX)
        .expect("events")
        .map(|event| {
            let event = event.expect("event");
            let status = event.weather_status.map_or("none", |s| s.as_str());
            (event.event_id, status.to_owned())
        })
        .collect()
}

/// Statuses counted.
fn coverage(
    statuses: &std::collections::HashMap<String, String>,
) -> std::collections::BTreeMap<&str, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for status in statuses.values() {
        *counts.entry(status.as_str()).or_insert(0) += 1;
    }
    counts
}

/// The order weather and detections arrive in changes no join: the sample's detections loaded
/// first and its weather after (every join then comes from a re-join) end with the weather,
/// rules, predictions and vector each event gets with the weather loaded first. An event whose
/// status changed was revised; one with no station in range never is.
#[test]
fn weather_loaded_after_the_detections_gives_every_event_the_join_it_gets_loaded_before() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = open(
        dir.path(),
        &[
            sample("australia_bom_weather_stations.csv"),
            sample("fire_archive_M6_96619.csv"),
        ],
    );
    let before = statuses(&service);
    service
        .load(
            &[sample("australia_bom_daily_weather_2019-05_2020-06.csv")],
            false,
        )
        .expect("weather loads");
    let after = statuses(&service);
    let reference = &super::support::loaded().service;
    // The incidents take the late weather too, and their outlooks follow: the same as with the
    // weather loaded first.
    let incidents = |s: &Service| {
        let tracker = s.pipeline.tracker().expect("tracker");
        tracker
            .incidents(&s.store)
            .expect("incidents")
            .into_iter()
            .filter(|i| i.merged_into.is_none())
            .map(|i| (i.id.clone(), (i.weather, i.outlook)))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (late, early) = (incidents(&service), incidents(reference));
    assert_eq!(late.len(), early.len());
    let with_weather = early.values().filter(|(w, _)| w.is_some()).count();
    assert!(with_weather > 100, "{with_weather} incidents with weather");
    for (id, (weather, outlook)) in &early {
        let (late_weather, late_outlook) = &late[id];
        assert_eq!(late_weather, weather, "{id}'s weather");
        let p = |o: &Option<firesight::tracker::GrowthOutlook>| o.as_ref().map(|o| o.p_growth_24h);
        let (a, b) = (p(late_outlook), p(outlook));
        assert!(
            a.zip(b).is_some_and(|(a, b)| (a - b).abs() < 1e-6) || a == b,
            "{id}'s outlook: {a:?} late, {b:?} early"
        );
    }
    assert_eq!(coverage(&after), coverage(&statuses(reference)));
    assert_eq!(coverage(&before).get("matched"), None);

    let model = reference
        .pipeline
        .space()
        .embedder
        .model_version()
        .to_owned();
    let mut revisions = std::collections::BTreeMap::new();
    for event in reference
        .store
        .events_between(i64::MIN, i64::MAX)
        .expect("events")
    {
        let expected = event.expect("event");
        let id = &expected.event_id;
        let got = service.store.event(id).expect("read").expect("stored");
        // The growth outlook is its incident's as of its granule, kept through the re-join; the
        // event's own predictions are made again.
        let (got_own, got_outlook) = super::support::split_outlook(&got);
        let (expected_own, expected_outlook) = super::support::split_outlook(&expected);
        assert_eq!(
            (
                &got.weather_status,
                &got.weather_conditions,
                &got.impact_assessment,
                got_own
            ),
            (
                &expected.weather_status,
                &expected.weather_conditions,
                &expected.impact_assessment,
                expected_own
            ),
            "{id}"
        );
        assert_eq!(
            got_outlook.len(),
            expected_outlook.len(),
            "{id} keeps its outlook"
        );
        let vector = |s: &Service| {
            let seq = s.store.seq_of(id).expect("read").expect("seq");
            s.store
                .vector(seq, &model)
                .expect("read")
                .expect("vector")
                .vector
        };
        assert_eq!(vector(&service), vector(reference), "{id}");
        if before[id] != after[id] {
            assert!(got.revision.is_some(), "{id}: status changed, not revised");
        }
        if after[id] == "no_station_in_range" {
            assert_eq!(got.revision, None, "{id}");
        }
        *revisions.entry(got.revision.unwrap_or(0)).or_insert(0) += 1;
    }
    eprintln!(
        "weather statuses, detections first: {:?}; after the weather came: {:?}; events by revision: {revisions:?}",
        coverage(&before),
        coverage(&after)
    );
}

/// A source database's update of a weather row (`apply_weather` with corrections, as the
/// Debezium weather topic does): the corrected observation replaces the stored one, and the
/// detection that joined it is joined again as revision 1; without corrections the same
/// observation is refused as a contradiction, as every other source's is.
#[test]
fn a_corrected_observation_replaces_the_stored_one_and_rejoins_its_detections() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = open(dir.path(), &[sample("australia_bom_weather_stations.csv")]);
    let hill = station_position(OBSERVATORY_HILL);
    assert_eq!(
        ingest(
            &service,
            vec![observation(OBSERVATORY_HILL, "2019-11-12T03:00:00Z", 26.0)]
        ),
        (1, vec![])
    );
    let fire = detection(hill, "2019-11-12T04:00:00Z");
    service
        .pipeline
        .ingest_detections(vec![(1, fire.clone())])
        .expect("stored");
    let marker = |service: &Service| {
        let event = service
            .store
            .event(&fire.event_id())
            .expect("read")
            .expect("stored");
        let weather = event.weather_conditions.expect("joined");
        (weather.max_temp_c, event.revision)
    };
    assert_eq!(marker(&service), (Some(26.0), None));
    let fixed = observation(OBSERVATORY_HILL, "2019-11-12T03:00:00Z", 31.0);
    let (accepted, refused) = ingest(&service, vec![fixed.clone()]);
    assert_eq!(accepted, 0);
    assert!(
        refused[0].contains("already has a different observation"),
        "{refused:?}"
    );
    let outcome = service
        .pipeline
        .apply_weather(
            "cdc",
            vec![(1, fixed)],
            true,
            |_| Ok(Vec::new()),
            |_| Ok(Vec::new()),
        )
        .expect("corrected");
    assert_eq!((outcome.accepted, outcome.rejected.len()), (1, 0));
    assert_eq!(marker(&service), (Some(31.0), Some(1)));
}
