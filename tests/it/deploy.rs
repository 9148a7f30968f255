//! The deployment files agree with the code: the compose stack creates every topic the settings
//! name (the changelog compacted, with the detections topic's partitions), KEDA scales on the
//! group and topic the pods consume, up to that partition count, and the Grafana dashboard
//! charts every metric the service defines and no other, and the Debezium example's connector,
//! tables and settings agree. (scripts/check-deploy.sh validates the files' syntax against
//! Compose's and Kubernetes' schemas.)

use std::collections::{BTreeMap, BTreeSet};

use firesight::config::Settings;

use super::support::repo;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A topic as kafka-init creates it: partitions, and whether it is compacted.
#[derive(Debug, PartialEq)]
struct Created {
    partitions: u32,
    compacted: bool,
}

/// The `create <topic> <partitions> [options]` lines of docker-compose.yml's kafka-init job.
fn compose_topics() -> BTreeMap<String, Created> {
    let compose = read("docker-compose.yml");
    let mut topics = BTreeMap::new();
    for line in compose.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"create") || words.len() < 3 {
            continue;
        }
        let partitions = words[2]
            .parse()
            .unwrap_or_else(|_| panic!("partitions in `{line}`"));
        let compacted = words[3..]
            .windows(2)
            .any(|w| w == ["--config", "cleanup.policy=compact"]);
        let previous = topics.insert(
            words[1].to_owned(),
            Created {
                partitions,
                compacted,
            },
        );
        assert!(previous.is_none(), "{} is created twice", words[1]);
    }
    topics
}

/// The value of `key: value` in a YAML file's first line with that key (quotes removed).
fn yaml_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no `{key}:`"))
}

/// The settings the compose stack runs FireSight with, as far as topics go: the defaults and
/// the group id its environment sets.
fn compose_settings() -> Settings {
    let mut settings = Settings::defaults().expect("defaults");
    settings.kafka.group_id = yaml_value(&read("docker-compose.yml"), "FIRESIGHT__KAFKA__GROUP_ID");
    settings
}

#[test]
fn the_compose_stack_creates_every_topic_the_settings_name_and_no_other() {
    let created = compose_topics();
    let settings = compose_settings();
    let named: BTreeMap<String, &str> = settings
        .kafka
        .topics()
        .into_iter()
        .map(|(setting, topic)| (topic, setting))
        .collect();
    let missing: Vec<String> = named
        .iter()
        .filter(|(topic, _)| !created.contains_key(*topic))
        .map(|(topic, setting)| format!("{topic} ({setting})"))
        .collect();
    assert!(missing.is_empty(), "kafka-init does not create {missing:?}");
    let extra: Vec<&String> = created.keys().filter(|t| !named.contains_key(*t)).collect();
    assert!(
        extra.is_empty(),
        "kafka-init creates topics nothing uses: {extra:?}"
    );

    let kafka = &settings.kafka;
    let detections = &created[&kafka.detections_topic];
    let changelog = &created[&kafka.changelog()];
    assert!(changelog.compacted, "the changelog must be compacted");
    assert_eq!(
        changelog.partitions, detections.partitions,
        "partition p of the changelog holds detections partition p's state"
    );
    for (setting, topic) in kafka.topics() {
        if topic != kafka.changelog() {
            assert!(
                !created[&topic].compacted,
                "{topic} ({setting}) is a log, not compacted"
            );
        }
    }
}

#[test]
fn keda_scales_on_the_group_and_topic_the_pods_consume_up_to_its_partitions() {
    let scaled = read("deploy/k8s/scaledobject.yaml");
    let deployment = read("deploy/k8s/deployment.yaml");
    let settings = compose_settings();
    // The Deployment's environment names the group the same way compose does.
    let group = deployment
        .lines()
        .skip_while(|line| !line.contains("name: FIRESIGHT__KAFKA__GROUP_ID"))
        .nth(1)
        .and_then(|line| line.trim().strip_prefix("value:"))
        .map(|v| v.trim().to_owned())
        .expect("the Deployment sets FIRESIGHT__KAFKA__GROUP_ID");
    assert_eq!(group, settings.kafka.group_id);
    assert_eq!(yaml_value(&scaled, "consumerGroup"), group);
    assert_eq!(
        yaml_value(&scaled, "topic"),
        settings.kafka.detections_topic
    );
    let target = scaled
        .lines()
        .skip_while(|line| line.trim() != "scaleTargetRef:")
        .find_map(|line| line.trim().strip_prefix("name:"))
        .map(|v| v.trim().to_owned())
        .expect("the ScaledObject names its scaleTargetRef");
    assert_eq!(
        target,
        yaml_value(&deployment, "name"),
        "the ScaledObject scales the Deployment"
    );
    let max: u32 = yaml_value(&scaled, "maxReplicaCount")
        .parse()
        .expect("a count");
    let partitions = compose_topics()[&settings.kafka.detections_topic].partitions;
    assert_eq!(
        max, partitions,
        "replicas beyond the detections partitions would hold none"
    );
}

#[test]
fn the_dashboard_charts_every_metric_the_service_defines() {
    // The names, from their one definition.
    let source = read("src/metrics.rs");
    let defined: BTreeSet<String> = source
        .lines()
        .filter_map(|line| line.strip_prefix("pub const "))
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_owned)
        .collect();
    assert!(defined.len() > 30, "{} metric names found", defined.len());

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/firesight.json")).expect("dashboard JSON");
    let mut charted = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            for (at, _) in expr.match_indices("firesight_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix).filter(|b| defined.contains(*b)))
                    .map_or(name.clone(), str::to_owned);
                charted.insert(base);
            }
        }
    }
    let unknown: Vec<&String> = charted.difference(&defined).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard charts undefined metrics {unknown:?}"
    );
    let uncharted: Vec<&String> = defined.difference(&charted).collect();
    assert!(uncharted.is_empty(), "the dashboard lacks {uncharted:?}");
}

/// The columns of each `CREATE TABLE` in a SQL file, by table.
fn sql_tables(sql: &str) -> BTreeMap<String, Vec<String>> {
    let mut tables = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in sql.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
            let name = rest.trim_end_matches('(').trim().to_owned();
            current = Some((name, Vec::new()));
        } else if line.starts_with(");") {
            if let Some((name, columns)) = current.take() {
                tables.insert(name, columns);
            }
        } else if let Some((_, columns)) = current.as_mut()
            && let Some(column) = line.split_whitespace().next()
            && !column.starts_with("--")
        {
            columns.push(column.to_owned());
        }
    }
    tables
}

/// The Debezium example (deploy/debezium) holds together: FireSight's settings read the topics
/// the connector writes (`<topic.prefix>.<table>` for each table it includes) as Debezium
/// inputs, the tables it creates are the ones the connector includes, and their columns are
/// what FireSight reads: a row of the real MODIS file in `fire_detections`' columns decodes,
/// and the weather and sensor tables carry every field of their JSON forms.
#[test]
fn the_debezium_example_connector_tables_and_settings_agree() {
    use firesight::stream::kafka::debezium::{self, Change, SENSOR_FIELDS, WEATHER_FIELDS};
    let settings = Settings::load(Some(&repo().join("deploy/debezium/firesight.toml")))
        .expect("the example settings load");
    let k = &settings.kafka;
    assert!(k.debezium.detections && k.debezium.weather && k.debezium.sensors);
    let connector: serde_json::Value =
        serde_json::from_str(&read("deploy/debezium/postgres-connector.json")).expect("json");
    let config = &connector["config"];
    let prefix = config["topic.prefix"].as_str().expect("topic.prefix");
    let included: Vec<&str> = config["table.include.list"]
        .as_str()
        .expect("table.include.list")
        .split(',')
        .collect();
    let topics: Vec<String> = included.iter().map(|t| format!("{prefix}.{t}")).collect();
    assert_eq!(
        topics,
        [
            k.detections_topic.clone(),
            k.weather_topic.clone(),
            k.sensors_topic.clone(),
        ],
        "detections, weather and sensors, in that order"
    );
    let tables = sql_tables(&read("deploy/debezium/tables.sql"));
    let names: Vec<String> = included
        .iter()
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
        .collect();
    assert_eq!(
        tables.keys().cloned().collect::<Vec<_>>().len(),
        names.len()
    );
    for name in &names {
        assert!(tables.contains_key(name), "tables.sql creates {name}");
    }
    // A real MODIS row in fire_detections' columns, as the connector sends it without schemas.
    let file = std::fs::read_to_string(super::support::shared(
        "firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv",
    ))
    .expect("MODIS file");
    let mut lines = file.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let cells: Vec<&str> = lines.next().expect("a row").split(',').collect();
    let mut row = serde_json::Map::new();
    for column in &tables["fire_detections"] {
        let value = match header.iter().position(|h| h == column) {
            Some(i) => serde_json::Value::String(cells[i].to_owned()),
            None if column == "id" => serde_json::json!(1),
            None => serde_json::Value::Null,
        };
        row.insert(column.clone(), value);
    }
    let value = serde_json::json!({"before": null, "after": row, "op": "r",
        "source": {"connector": "postgresql"}});
    let change = debezium::decode::<firesight::event::FireDetection>(
        None,
        &serde_json::to_vec(&value).expect("json"),
        &k.debezium.detection_table,
    )
    .unwrap_or_else(|r| panic!("{}: {}", r.field(), r.reason()));
    assert!(matches!(change, Change::Upsert { .. }), "{change:?}");
    for (table, fields) in [
        ("weather_data", &WEATHER_FIELDS[..]),
        ("sensor_readings", &SENSOR_FIELDS[..]),
    ] {
        let columns: BTreeSet<&str> = tables[table].iter().map(String::as_str).collect();
        for field in fields {
            assert!(columns.contains(field), "{table} lacks {field}");
        }
    }
}
