//! Clusters, outliers and explained similarity over real HTTP on the real archive.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::{get_json as get, loaded, open_async, sample, serve_router, settings};

async fn serve(state: firesight::api::AppState) -> String {
    serve_router(firesight::api::router(state)).await
}

/// Adjusted Rand index of two labelings of the same items.
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    let choose2 = |x: f64| x * (x - 1.0) / 2.0;
    let mut table: HashMap<(usize, usize), f64> = HashMap::new();
    let mut rows: HashMap<usize, f64> = HashMap::new();
    let mut cols: HashMap<usize, f64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *rows.entry(x).or_default() += 1.0;
        *cols.entry(y).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&n| choose2(n)).sum();
    let sum_rows: f64 = rows.values().map(|&n| choose2(n)).sum();
    let sum_cols: f64 = cols.values().map(|&n| choose2(n)).sum();
    let expected = sum_rows * sum_cols / choose2(a.len() as f64);
    let max = (sum_rows + sum_cols) / 2.0;
    (index - expected) / (max - expected)
}

/// Space-time incidents, computed independently of the service: detections within `km` and
/// `hours` of each other are one incident (connected components).
pub fn space_time_incidents(points: &[(f64, f64, i64)], km: f64, hours: f64) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..points.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for i in 0..points.len() {
        for j in i + 1..points.len() {
            let (a, b) = (points[i], points[j]);
            if ((a.2 - b.2).abs() as f64) <= hours * 3.6e6
                && firesight::geo::distance_km(a.0, a.1, b.0, b.1) <= km
            {
                let (ra, rb) = (find(&mut parent, i), find(&mut parent, j));
                parent[ra] = rb;
            }
        }
    }
    (0..points.len()).map(|i| find(&mut parent, i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_are_stable_and_follow_space_time_incidents() {
    let service = &loaded().service;
    let base = serve(service.api_state()).await;
    let url = format!(
        "{base}/v1/clusters?from=2019-09-10&to=2019-09-10&min_size=5&limit=1000&representatives=2"
    );
    let (status, first) = get(&url).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, second) = get(&url).await;
    assert_eq!(
        first, second,
        "the same data gives the same clusters and ids"
    );
    let events = first["window"]["events"].as_u64().expect("events") as usize;
    assert_eq!(events, 1317, "every detection of the day");
    let clusters = first["clusters"].as_array().expect("clusters");
    assert!(
        clusters.len() >= 10,
        "a busy day has many groups: {}",
        clusters.len()
    );
    let in_clusters: u64 = clusters
        .iter()
        .map(|c| c["size"].as_u64().expect("size"))
        .sum();
    assert_eq!(
        in_clusters + first["noise"].as_u64().expect("noise"),
        events as u64
    );
    for c in clusters {
        assert!(c["id"].as_str().expect("id").starts_with("cl_"));
        assert_eq!(c["representatives"].as_array().map(Vec::len), Some(2));
        assert!(c["first_detection"].as_i64() <= c["last_detection"].as_i64());
    }

    // Members, and how they compare with space-time incidents found independently.
    let (_, with_members) = get(&format!("{url}&members=true")).await;
    let mut label: HashMap<String, usize> = HashMap::new();
    for (c, cluster) in with_members["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .enumerate()
    {
        for id in cluster["members"].as_array().expect("members") {
            label.insert(id.as_str().expect("id").to_owned(), c);
        }
    }
    assert_eq!(label.len() as u64, in_clusters);
    let day = service
        .store
        .list_events(1_568_073_600_000, 1_568_159_999_999, None, 5000)
        .expect("day");
    assert_eq!(day.events.len(), events);
    let points: Vec<(f64, f64, i64)> = day
        .events
        .iter()
        .map(|e| (e.location.latitude, e.location.longitude, e.detection_time))
        .collect();
    let incidents = space_time_incidents(&points, 5.0, 24.0);
    // Noise points are singletons.
    let ours: Vec<usize> = day
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| label.get(&e.event_id).copied().unwrap_or(100_000 + i))
        .collect();
    let ari = adjusted_rand_index(&ours, &incidents);
    let clustered: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] < 100_000).collect();
    let ari_clustered = adjusted_rand_index(
        &clustered.iter().map(|&i| ours[i]).collect::<Vec<_>>(),
        &clustered.iter().map(|&i| incidents[i]).collect::<Vec<_>>(),
    );
    println!(
        "clusters vs 5 km / 24 h incidents on 2019-09-10: {} clusters, {} noise, ARI {ari:.3} (clustered events only: {ari_clustered:.3})",
        clusters.len(),
        first["noise"]
    );

    // Members are closer to each other in the model's space than events of the day in general.
    let model = first["model_version"].as_str().expect("model");
    let vector = |id: &str| {
        let seq = service.store.seq_of(id).expect("seq").expect("stored");
        service
            .store
            .vector(seq, model)
            .expect("vector")
            .expect("has one")
            .vector
    };
    let distance = |a: &[f32], b: &[f32]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from((x - y) * (x - y)))
            .sum::<f64>()
            .sqrt()
    };
    let all: Vec<Vec<f32>> = day
        .events
        .iter()
        .step_by(7)
        .map(|e| vector(&e.event_id))
        .collect();
    let mut background = 0.0;
    let mut pairs = 0.0;
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            background += distance(&all[i], &all[j]);
            pairs += 1.0;
        }
    }
    background /= pairs;
    for cluster in with_members["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .take(5)
    {
        let members: Vec<Vec<f32>> = cluster["members"]
            .as_array()
            .expect("members")
            .iter()
            .take(60)
            .map(|id| vector(id.as_str().expect("id")))
            .collect();
        let (mut inside, mut n) = (0.0, 0.0);
        for i in 0..members.len() {
            for j in i + 1..members.len() {
                inside += distance(&members[i], &members[j]);
                n += 1.0;
            }
        }
        inside /= n;
        assert!(
            inside < 0.5 * background,
            "cluster {} spreads {inside:.3} against the day's {background:.3}",
            cluster["id"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_path_finds_the_clusters_the_exact_path_finds() {
    let service = &loaded().service;
    let exact = serve(service.api_state()).await;
    let mut state = service.api_state();
    state.patterns.exact_below = 0;
    let indexed = serve(state).await;
    let query = "/v1/clusters?from=2019-09-09&to=2019-09-09&members=true&limit=1000";
    let (_, a) = get(&format!("{exact}{query}")).await;
    let (_, b) = get(&format!("{indexed}{query}")).await;
    let labels = |v: &Value| -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for (c, cluster) in v["clusters"]
            .as_array()
            .expect("clusters")
            .iter()
            .enumerate()
        {
            for id in cluster["members"].as_array().expect("members") {
                m.insert(id.as_str().expect("id").to_owned(), c);
            }
        }
        m
    };
    let (la, lb) = (labels(&a), labels(&b));
    let ids: Vec<&String> = la
        .keys()
        .chain(lb.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let x: Vec<usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| la.get(*id).copied().unwrap_or(100_000 + i))
        .collect();
    let y: Vec<usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| lb.get(*id).copied().unwrap_or(100_000 + i))
        .collect();
    let ari = adjusted_rand_index(&x, &y);
    println!("exact vs index neighbour graph on 2019-09-09: ARI {ari:.3}");
    assert!(
        ari > 0.9,
        "the approximate graph changes the clusters: ARI {ari:.3}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_extreme_detections_rank_first_as_outliers() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let archive = std::fs::read_to_string(sample("fire_archive_M6_96619.csv")).expect("archive");
    let mut lines: Vec<String> = archive
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.contains(",2019-09-1"))
        .map(|(_, l)| l.to_owned())
        .collect();
    let ordinary = lines.len() - 1;
    // Far outside the data (MODIS pixels here reach 4.8 km and a few thousand MW), yet inside
    // what validation accepts.
    let planted = [
        "-25.5,133.5,590,12.0,9.0,2019-09-11,0130,Terra,MODIS,100,6.3,170.0,90000.0,D,0",
        "-20.0,140.0,580,15.0,11.0,2019-09-12,1420,Aqua,MODIS,100,6.3,160.0,70000.0,N,0",
        "-30.1,120.2,595,10.0,8.0,2019-09-13,0250,Terra,MODIS,99,6.3,165.0,80000.0,D,0",
    ];
    lines.extend(planted.iter().map(|s| (*s).to_owned()));
    let file = dir.path().join("planted.csv");
    std::fs::write(&file, lines.join("\n")).expect("write");
    let db = tempfile::TempDir::new().expect("db");
    let files = vec![
        sample("australia_bom_weather_stations.csv"),
        sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
        file,
    ];
    let service = open_async(settings(db.path()), files).await;
    let base = serve(service.api_state()).await;
    let (status, body) = get(&format!(
        "{base}/v1/outliers?from=2019-09-10&to=2019-09-19&limit=10"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["window"]["events"].as_u64(), Some(ordinary as u64 + 3));
    let top: Vec<&Value> = body["outliers"]
        .as_array()
        .expect("outliers")
        .iter()
        .collect();
    let frps: Vec<f64> = top
        .iter()
        .map(|o| o["summary"]["frp_mw"].as_f64().expect("frp"))
        .collect();
    let planted_frp = [90000.0, 70000.0, 80000.0];
    for frp in planted_frp {
        assert!(
            frps[..3].contains(&frp),
            "planted FRP {frp} not in the top 3: {frps:?}"
        );
    }
    // The reasons say why, naming a deviating feature.
    let reasons = top[0]["reasons"].as_array().expect("reasons");
    assert!(
        reasons.iter().any(|r| r
            .as_str()
            .is_some_and(|r| r.contains("scan_km") || r.contains("log1p_frp_mw"))),
        "{reasons:?}"
    );
    // The anomaly model sees them too: worse reconstructed than every training event.
    for t in &top[..3] {
        assert!(
            t["model_anomaly"].as_f64().expect("model_anomaly") >= 0.99,
            "{t}"
        );
    }
    // The real data's own oddities (fires in rain, the hottest real pixels) come next, behind;
    // ordinary detections are not near the top. (The gap narrowed once the anomaly model's
    // score joined the product: it rates the real oddities high too, 0.91–1.0.)
    let fourth = top[3]["score"].as_f64().expect("score");
    assert!(
        top[2]["score"].as_f64().expect("score") > 1.05 * fourth,
        "{top:?}"
    );
    assert!(!planted_frp.contains(&frps[3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_feature_that_separates_a_match() {
    let service = &loaded().service;
    let base = serve(service.api_state()).await;
    // The archive's first detection, with fifty times its FRP.
    let hotter = json!({
        "latitude": -11.807, "longitude": 142.0583, "acquired_at": "2019-08-01T00:56:00Z",
        "satellite": "Terra", "instrument": "MODIS", "brightness_k": 313.0,
        "brightness_background_k": 297.3, "scan_km": 1.0, "track_km": 1.0,
        "confidence_percent": 48, "confidence": "nominal", "frp_mw": 330.0, "daytime": true, "version": "6.3",
        "detection_type": 0
    });
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/similar"))
        .json(&json!({
            "k": 10, "detection": hotter, "explain": true,
            "filters": {"bbox": "141.9,-11.9,142.2,-11.7", "from": "2019-08-01", "to": "2019-08-01"}
        }))
        .send()
        .await
        .expect("post");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{body}");
    let neighbours = body["neighbours"].as_array().expect("neighbours");
    assert!(
        neighbours.iter().all(|n| n["explain"].is_object()),
        "every match explained"
    );
    let twin = neighbours
        .iter()
        .find(|n| {
            n["summary"]["frp_mw"].as_f64() == Some(6.6)
                && n["explain"]["distance_km"].as_f64() == Some(0.0)
        })
        .expect("the original is among its neighbours there");
    assert_eq!(twin["explain"]["differs"][0]["feature"], "frp", "{twin}");
    assert!(
        twin["explain"]["differs"][0]["share"]
            .as_f64()
            .expect("share")
            > 0.9,
        "{twin}"
    );
    let shared = twin["explain"]["shared"].as_array().expect("shared");
    assert!(shared.iter().any(|f| f == "location"), "{twin}");

    // A bare vector cannot be explained; the error names the field.
    let refused = reqwest::Client::new()
        .post(format!("{base}/v1/similar"))
        .json(&json!({"vector": vec![0.0; 16], "explain": true}))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["field"], "explain");
    // The GET route explains too.
    let id = twin["event_id"].as_str().expect("id");
    let (status, body) = get(&format!("{base}/v1/fires/{id}/similar?k=3&explain=true")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["neighbours"][0]["explain"]["shared"].is_array(),
        "{body}"
    );
    let (status, body) = get(&format!("{base}/v1/fires/{id}/similar?explain=yes")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("explain"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_over_the_ceiling_is_refused_with_the_reason() {
    let service = &loaded().service;
    let mut state = service.api_state();
    state.patterns.max_window_events = 1000;
    let base = serve(state).await;
    let (status, body) = get(&format!("{base}/v1/clusters?from=2019-09-10&to=2019-09-10")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "window");
    assert!(
        body["error"]["reason"]
            .as_str()
            .expect("reason")
            .contains("1000"),
        "{body}"
    );
    for (query, field) in [
        ("min_size=1", "min_size"),
        ("from=2019-09-11&to=2019-09-10", "from"),
        ("bbox=10,10,5", "bbox"),
        ("min_samples=0", "min_samples"),
        ("k=3", "k"),
    ] {
        let (status, body) = get(&format!("{base}/v1/clusters?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    let (status, body) = get(&format!("{base}/v1/outliers?limit=0")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
}
