//! Record formats on the topics: JSON, and Confluent-framed Avro (magic byte 0, a 4-byte
//! big-endian schema id, then the Avro datum).
//!
//! Avro inputs are read with the writer's schema (found by id) resolved against FireSight's own
//! reader schema for the topic, then checked by the same code as the JSON form, so both formats
//! refuse a bad record with the same field and reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate};
use serde::Deserialize;
use serde_json::{Map, Number, Value as Json};

use crate::decode::{JsonEvent, json_error};
use crate::event::{FieldError, FireDetection, FireEventV2, SensorReading, WeatherObservation};

/// The magic byte that opens a Confluent-framed record.
pub const MAGIC: u8 = 0;

const REGISTRY: &str = include_str!("../../../schemas/registry.json");
const SCHEMA_FILES: [(&str, &str); 6] = [
    (
        "fire_event_v1.avsc",
        include_str!("../../../schemas/fire_event_v1.avsc"),
    ),
    (
        "fire_event_v2.avsc",
        include_str!("../../../schemas/fire_event_v2.avsc"),
    ),
    (
        "fire_detection_v1.avsc",
        include_str!("../../../schemas/fire_detection_v1.avsc"),
    ),
    (
        "weather_observation_v1.avsc",
        include_str!("../../../schemas/weather_observation_v1.avsc"),
    ),
    (
        "weather_observation_v2.avsc",
        include_str!("../../../schemas/weather_observation_v2.avsc"),
    ),
    (
        "sensor_reading_v1.avsc",
        include_str!("../../../schemas/sensor_reading_v1.avsc"),
    ),
];

/// The fixed id of `fire_event_v2.avsc` (the enriched topic's current schema).
pub const FIRE_EVENT_V2_ID: u32 = 2;
/// The fixed id of `fire_event_v1.avsc`.
pub const FIRE_EVENT_V1_ID: u32 = 1;
/// The fixed id of `fire_detection_v1.avsc`.
pub const FIRE_DETECTION_ID: u32 = 3;
/// The fixed id of `weather_observation_v1.avsc` (daily summaries only).
pub const WEATHER_V1_ID: u32 = 4;
/// The fixed id of `weather_observation_v2.avsc` (adds `observed_at`), the weather reader schema.
pub const WEATHER_ID: u32 = 6;
/// The fixed id of `sensor_reading_v1.avsc`.
pub const SENSOR_ID: u32 = 5;

#[derive(Deserialize)]
struct RegistryFile {
    schemas: Vec<RegistryEntry>,
}

#[derive(Deserialize)]
struct RegistryEntry {
    id: u32,
    file: String,
}

/// Why a schema could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A bundled schema does not parse (a build defect).
    #[error("bundled schema {0} is invalid: {1}")]
    Bundled(String, String),
    /// The registry could not be reached or answered an error; the record is retried later.
    #[error("schema registry: {0}")]
    Unreachable(String),
}

/// Schema ids → schemas: the bundled fixed ids, or a schema registry's (cached).
pub struct Schemas {
    fixed: HashMap<u32, Arc<Schema>>,
    readers: Readers,
    remote: Option<Remote>,
    /// The id enriched records are framed with: `FIRE_EVENT_V2_ID`, or the registry's.
    output_id: u32,
}

/// FireSight's reader schema for each input kind and for the enriched record.
pub struct Readers {
    fire_event: Arc<Schema>,
    detection: Arc<Schema>,
    weather: Arc<Schema>,
    sensor: Arc<Schema>,
}

/// Where schema ids resolve beyond the bundled ones: a schema registry. The service implements
/// it over HTTP (`stream::kafka::registry`); this crate only caches what it answers.
pub trait SchemaSource: Send + Sync {
    /// The writer schema registered under `id`, or `None` when the registry has no such id.
    fn fetch(&self, id: u32) -> Result<Option<Arc<Schema>>, SchemaError>;
    /// Registers `schema` under `subject` and returns its id.
    fn register(&self, subject: &str, schema: &str) -> Result<u32, SchemaError>;
}

struct Remote {
    source: Box<dyn SchemaSource>,
    cache: Mutex<HashMap<u32, Option<Arc<Schema>>>>,
}

/// How a record's schema id resolved.
enum Lookup {
    Found(Arc<Schema>),
    Unknown,
}

impl Schemas {
    /// The bundled schemas with their fixed ids (`schemas/registry.json`).
    pub fn bundled() -> Result<Self, SchemaError> {
        let registry: RegistryFile = serde_json::from_str(REGISTRY)
            .map_err(|e| SchemaError::Bundled("registry.json".into(), e.to_string()))?;
        let parse = |file: &str| -> Result<Arc<Schema>, SchemaError> {
            let text = SCHEMA_FILES
                .iter()
                .find(|(name, _)| *name == file)
                .map(|(_, text)| *text)
                .ok_or_else(|| SchemaError::Bundled(file.into(), "not bundled".into()))?;
            Schema::parse_str(text)
                .map(Arc::new)
                .map_err(|e| SchemaError::Bundled(file.into(), e.to_string()))
        };
        let mut fixed = HashMap::new();
        for entry in &registry.schemas {
            fixed.insert(entry.id, parse(&entry.file)?);
        }
        let reader = |id: u32| {
            fixed
                .get(&id)
                .cloned()
                .ok_or_else(|| SchemaError::Bundled(format!("id {id}"), "missing".into()))
        };
        let readers = Readers {
            fire_event: reader(FIRE_EVENT_V2_ID)?,
            detection: reader(FIRE_DETECTION_ID)?,
            weather: reader(WEATHER_ID)?,
            sensor: reader(SENSOR_ID)?,
        };
        Ok(Self {
            fixed,
            readers,
            remote: None,
            output_id: FIRE_EVENT_V2_ID,
        })
    }

    /// Registers `fire_event_v2.avsc` under `subject` with the registry (Confluent REST:
    /// `POST /subjects/{subject}/versions`) and frames enriched records with the id it answers.
    /// Registering the same schema again gives the same id, so every instance agrees. Without a
    /// registry the fixed id stays.
    pub fn register_output(&mut self, subject: &str) -> Result<u32, SchemaError> {
        if let Some(remote) = &self.remote {
            let text = SCHEMA_FILES
                .iter()
                .find(|(name, _)| *name == "fire_event_v2.avsc")
                .map(|(_, text)| *text)
                .ok_or_else(|| {
                    SchemaError::Bundled("fire_event_v2.avsc".into(), "not bundled".into())
                })?;
            self.output_id = remote.source.register(subject, text)?;
        }
        Ok(self.output_id)
    }

    /// Resolves ids unknown to the bundle through `source` (a schema registry), caching each
    /// answer; FireSight's reader schemas stay the bundled ones.
    pub fn with_source(mut self, source: Box<dyn SchemaSource>) -> Self {
        self.remote = Some(Remote {
            source,
            cache: Mutex::new(HashMap::new()),
        });
        self
    }

    fn lookup(&self, id: u32) -> Result<Lookup, SchemaError> {
        let Some(remote) = &self.remote else {
            return Ok(match self.fixed.get(&id) {
                Some(schema) => Lookup::Found(Arc::clone(schema)),
                None => Lookup::Unknown,
            });
        };
        if let Some(known) = remote
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(known.clone().map_or(Lookup::Unknown, Lookup::Found));
        }
        let fetched = remote.source.fetch(id)?;
        remote
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, fetched.clone());
        Ok(fetched.map_or(Lookup::Unknown, Lookup::Found))
    }

    /// Decodes one input record of kind `T` (JSON, or Confluent-framed Avro).
    pub fn decode<T: Input>(&self, payload: &[u8]) -> Result<T, Refusal> {
        if payload.first() == Some(&MAGIC) {
            let datum = self.avro_value(payload, T::reader(&self.readers))?;
            let json = to_json(datum, "$").map_err(Refusal::Field)?;
            let item: T =
                serde_json::from_value(json).map_err(|e| Refusal::Field(json_error(1, &e)))?;
            item.check(1).map_err(Refusal::Field)?;
            return Ok(item);
        }
        let text = std::str::from_utf8(payload).map_err(|e| {
            Refusal::Format(format!(
                "not UTF-8 JSON and not Confluent-framed Avro (no magic byte 0): invalid UTF-8 at byte {}",
                e.valid_up_to()
            ))
        })?;
        if text.trim().is_empty() {
            return Err(Refusal::Format("empty record".into()));
        }
        let item: T = serde_json::from_str(text).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                Refusal::Format(format!("not JSON: {e}"))
            } else {
                Refusal::Field(json_error(1, &e))
            }
        })?;
        item.check(1).map_err(Refusal::Field)?;
        Ok(item)
    }

    /// Reads a framed `FireEventV2`, written with any registered version (V1 data reads as V2).
    pub fn decode_fire_event(&self, payload: &[u8]) -> Result<FireEventV2, Refusal> {
        if payload.first() != Some(&MAGIC) {
            return serde_json::from_slice(payload)
                .map_err(|e| Refusal::Format(format!("not a FireEventV2: {e}")));
        }
        let datum = self.avro_value(payload, &self.readers.fire_event)?;
        apache_avro::from_value(&datum)
            .map_err(|e| Refusal::Format(format!("not a FireEventV2: {e}")))
    }

    fn avro_value(&self, payload: &[u8], reader: &Schema) -> Result<Value, Refusal> {
        let Some(id) = payload.get(1..5) else {
            return Err(Refusal::Format(format!(
                "starts with the Avro magic byte but is {} bytes, shorter than the 5-byte header",
                payload.len()
            )));
        };
        let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        let writer = match self.lookup(id).map_err(Refusal::Schema)? {
            Lookup::Found(schema) => schema,
            Lookup::Unknown => {
                return Err(Refusal::Format(format!("unknown schema id {id}")));
            }
        };
        let mut body = &payload[5..];
        limit_avro_allocations();
        let value =
            apache_avro::from_avro_datum(&writer, &mut body, Some(reader)).map_err(|e| {
                Refusal::Format(format!("Avro datum (schema id {id}) does not decode: {e}"))
            })?;
        if !body.is_empty() {
            return Err(Refusal::Format(format!(
                "{} bytes left over after the Avro datum (schema id {id})",
                body.len()
            )));
        }
        Ok(value)
    }

    /// Encodes a `FireEventV2` as a Confluent-framed datum with the V2 schema's id (the
    /// registry's, after [`Schemas::register_output`]).
    ///
    /// Written straight from the struct by the schema (no intermediate `Value`, no schema
    /// resolution per record): on the streaming path the generic [`Schemas::encode_framed`]
    /// took a third of the consumer thread. The bytes are the generic path's
    /// (`encoding_a_fire_event_directly_gives_the_generic_bytes` holds them equal over every
    /// optional field and weather status).
    pub fn encode_fire_event(&self, event: &FireEventV2) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(512);
        out.push(MAGIC);
        out.extend_from_slice(&self.output_id.to_be_bytes());
        apache_avro::write_avro_datum_ref(
            &self.readers.fire_event,
            &AvroFireEvent(event),
            &mut out,
        )
        .map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Encodes any serialisable value as a Confluent-framed datum of `schema` under `id`.
    pub fn encode_framed<S: serde::Serialize>(
        &self,
        id: u32,
        schema: &Schema,
        value: &S,
    ) -> Result<Vec<u8>, String> {
        let value = apache_avro::to_value(value).map_err(|e| e.to_string())?;
        let value = value.resolve(schema).map_err(|e| e.to_string())?;
        let datum = apache_avro::to_avro_datum(schema, value).map_err(|e| e.to_string())?;
        Ok(frame(id, &datum))
    }

    /// A bundled schema by its fixed id (producers and tests encode with it).
    pub fn fixed(&self, id: u32) -> Option<Arc<Schema>> {
        self.fixed.get(&id).cloned()
    }
}

/// A `FireEventV2` as its Avro schema lays it out: every field in the schema's order, an absent
/// one as null. The JSON form leaves `similar_events` and `revision` out when absent, and the
/// schema-driven writer cannot write a left-out field's null default.
struct AvroFireEvent<'a>(&'a FireEventV2);

impl serde::Serialize for AvroFireEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let e = self.0;
        let mut record = serializer.serialize_struct("FireEventV2", 15)?;
        record.serialize_field("event_id", &e.event_id)?;
        record.serialize_field("correlation_id", &e.correlation_id)?;
        record.serialize_field("source", &e.source)?;
        record.serialize_field("detection_time", &e.detection_time)?;
        record.serialize_field("location", &e.location)?;
        record.serialize_field("fire_characteristics", &e.fire_characteristics)?;
        record.serialize_field("weather_status", &e.weather_status)?;
        record.serialize_field("weather_conditions", &e.weather_conditions)?;
        record.serialize_field("sensor_summary", &e.sensor_summary)?;
        record.serialize_field("impact_assessment", &e.impact_assessment)?;
        record.serialize_field("ml_predictions", &e.ml_predictions)?;
        record.serialize_field("model_version", &e.model_version)?;
        record.serialize_field("ingested_at", &e.ingested_at)?;
        record.serialize_field("similar_events", &e.similar_events)?;
        record.serialize_field("revision", &e.revision)?;
        record.end()
    }
}

/// The Confluent wire form of an Avro datum: the magic byte, the schema id (4 bytes, big-endian),
/// the datum.
pub fn frame(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(datum.len() + 5);
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Why an input record was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The bytes are not a record of any accepted format.
    Format(String),
    /// A field is missing, mistyped or out of range.
    Field(FieldError),
    /// The registry could not be asked; not the record's fault.
    Schema(SchemaError),
}

impl Refusal {
    /// The field at fault (`$` for the record as a whole).
    pub fn field(&self) -> &str {
        match self {
            Self::Field(error) => &error.field,
            _ => "$",
        }
    }

    /// The reason in words.
    pub fn reason(&self) -> String {
        match self {
            Self::Format(reason) => reason.clone(),
            Self::Field(error) => error.reason.clone(),
            Self::Schema(error) => error.to_string(),
        }
    }
}

/// An input record kind: its reader schema and its checks.
pub trait Input: JsonEvent {
    /// The kind's name in metrics and dead letters.
    const KIND: &'static str;
    /// FireSight's reader schema for the kind.
    fn reader(readers: &Readers) -> &Schema;
}

impl Input for FireDetection {
    const KIND: &'static str = "detection";
    fn reader(readers: &Readers) -> &Schema {
        &readers.detection
    }
}

impl Input for WeatherObservation {
    const KIND: &'static str = "weather";
    fn reader(readers: &Readers) -> &Schema {
        &readers.weather
    }
}

impl Input for SensorReading {
    const KIND: &'static str = "sensor";
    fn reader(readers: &Readers) -> &Schema {
        &readers.sensor
    }
}

/// An Avro value as the JSON form of the same record: timestamps become RFC 3339, dates
/// `YYYY-MM-DD`; a non-finite double is refused here, naming its field, since JSON has none.
/// The most apache-avro may reserve for one length it reads: a string's bytes, or an array's or
/// map's element count. A Confluent record of ~100 bytes can claim 500,000,000 elements, and
/// apache-avro reserves room for them before reading one (its own default limit, 512 MiB of
/// *elements*, lets that reach tens of GiB). No record FireSight reads is near 16 MiB (the
/// broker's own limit is 1 MiB by default, `kafka.max_record_bytes` ours), and every array
/// element and string byte takes at least one input byte, so a valid record never meets it.
pub const AVRO_MAX_ALLOCATION: usize = 16 * 1024 * 1024;

/// Sets [`AVRO_MAX_ALLOCATION`] before any datum is read (the limit is process-wide and only the
/// first setting counts: this runs before every decode, so it is the first).
fn limit_avro_allocations() {
    apache_avro::util::max_allocation_bytes(AVRO_MAX_ALLOCATION);
}

fn to_json(value: Value, path: &str) -> Result<Json, FieldError> {
    let unsupported =
        |what: &str| FieldError::new(1, path, format!("Avro {what} is not accepted here"));
    Ok(match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::Int(i) => Json::from(i),
        Value::Long(i) => Json::from(i),
        Value::Float(f) => finite(path, f64::from(f))?,
        Value::Double(f) => finite(path, f)?,
        Value::String(s) | Value::Enum(_, s) => Json::String(s),
        Value::Union(_, inner) => to_json(*inner, path)?,
        Value::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|v| to_json(v, path))
                .collect::<Result<_, _>>()?,
        ),
        Value::Record(fields) => {
            let mut map = Map::with_capacity(fields.len());
            for (name, value) in fields {
                let json = to_json(value, &name)?;
                map.insert(name, json);
            }
            Json::Object(map)
        }
        Value::TimestampMillis(ms) => {
            let at = DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| FieldError::new(1, path, format!("{ms} ms is out of range")))?;
            Json::String(at.to_rfc3339())
        }
        Value::Date(days) => {
            let date = NaiveDate::from_epoch_days(days)
                .ok_or_else(|| FieldError::new(1, path, format!("day {days} is out of range")))?;
            Json::String(date.to_string())
        }
        Value::Bytes(_) | Value::Fixed(..) => return Err(unsupported("bytes")),
        Value::Map(_) => return Err(unsupported("map")),
        _ => return Err(unsupported("logical type")),
    })
}

fn finite(path: &str, value: f64) -> Result<Json, FieldError> {
    Number::from_f64(value)
        .map(Json::Number)
        .ok_or_else(|| FieldError::new(1, path, format!("must be a finite number, got {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection_json() -> String {
        r#"{"latitude":-33.9,"longitude":150.1,"acquired_at":"2019-09-10T03:40:00Z","satellite":"Terra","instrument":"MODIS","brightness_k":330.5,"brightness_background_k":295.1,"scan_km":1.0,"track_km":1.0,"confidence_percent":80.0,"confidence":"high","frp_mw":25.3,"daytime":true,"version":"6.3","detection_type":0}"#.to_owned()
    }

    #[test]
    fn avro_and_json_forms_decode_to_the_same_detection() {
        let schemas = Schemas::bundled().expect("bundled");
        let json: FireDetection = schemas.decode(detection_json().as_bytes()).expect("json");
        let schema = schemas.fixed(FIRE_DETECTION_ID).expect("schema");
        let mut value = serde_json::to_value(&json).expect("to json");
        value["acquired_at"] = Json::from(json.acquired_at.timestamp_millis());
        let framed = schemas
            .encode_framed(FIRE_DETECTION_ID, &schema, &value)
            .expect("encodes");
        let avro: FireDetection = schemas.decode(&framed).expect("avro");
        assert_eq!(avro, json);
    }

    #[test]
    fn refusals_name_the_field_and_reason() {
        let schemas = Schemas::bundled().expect("bundled");
        let far = detection_json().replace("-33.9", "123");
        let err = schemas
            .decode::<FireDetection>(far.as_bytes())
            .expect_err("lat 123");
        assert_eq!(err.field(), "latitude");
        assert!(err.reason().contains("outside"), "{}", err.reason());
        let missing = detection_json().replace(r#""frp_mw":25.3,"#, "");
        let err = schemas
            .decode::<FireDetection>(missing.as_bytes())
            .expect_err("missing");
        assert_eq!(err.field(), "frp_mw");
        let err = schemas
            .decode::<FireDetection>(b"{not json")
            .expect_err("garbage");
        assert!(
            matches!(err, Refusal::Format(ref r) if r.starts_with("not JSON")),
            "{err:?}"
        );
        let err = schemas
            .decode::<FireDetection>(&[0, 0, 0, 0, 99, 1, 2])
            .expect_err("id");
        assert_eq!(err.reason(), "unknown schema id 99");
        let err = schemas
            .decode::<FireDetection>(&[0xff, 0xfe])
            .expect_err("binary");
        assert!(err.reason().contains("invalid UTF-8"), "{}", err.reason());
    }

    /// Avro's zig-zag varint of `n`.
    fn zigzag(n: i64) -> Vec<u8> {
        let mut v = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    #[test]
    fn a_tiny_record_claiming_a_huge_length_is_refused_not_allocated() {
        let schemas = Schemas::bundled().expect("bundled");
        // Schema id 2 (FireEventV2) starts with the event id, a string: claim 500 M bytes of it.
        let mut payload = vec![0, 0, 0, 0, 2];
        payload.extend(zigzag(500_000_000));
        payload.extend(b"fd_");
        let err = schemas
            .decode::<FireDetection>(&payload)
            .expect_err("refused");
        assert!(err.reason().contains("does not decode"), "{}", err.reason());
        // An array block count: 500 M elements of a record, in a 10-byte datum.
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"x","type":"long"}]}}}]}"#,
        )
        .expect("schema");
        let mut datum = zigzag(500_000_000);
        datum.extend([2, 0]);
        limit_avro_allocations();
        let result = apache_avro::from_avro_datum(&schema, &mut datum.as_slice(), None);
        assert!(result.is_err(), "refused before reserving 500 M elements");
    }

    #[test]
    fn avro_nan_is_refused_with_its_field() {
        let schemas = Schemas::bundled().expect("bundled");
        let good: FireDetection = schemas.decode(detection_json().as_bytes()).expect("json");
        let schema = schemas.fixed(FIRE_DETECTION_ID).expect("schema");
        let mut value = serde_json::to_value(&good).expect("to json");
        value["acquired_at"] = Json::from(good.acquired_at.timestamp_millis());
        let mut record = apache_avro::to_value(&value).expect("value");
        if let Value::Map(ref mut fields) = record {
            fields.insert("frp_mw".into(), Value::Double(f64::NAN));
        }
        let record = record.resolve(&schema).expect("resolves");
        let datum = apache_avro::to_avro_datum(&schema, record).expect("datum");
        let framed = frame(FIRE_DETECTION_ID, &datum);
        let err = schemas.decode::<FireDetection>(&framed).expect_err("NaN");
        assert_eq!(err.field(), "frp_mw");
        assert!(err.reason().contains("finite"), "{}", err.reason());
    }

    /// A framed weather datum written with schema `id`, `observed_at` set if the schema has it.
    fn framed_weather(schemas: &Schemas, id: u32, observed_at: Option<i64>) -> Vec<u8> {
        let schema = schemas.fixed(id).expect("schema");
        let mut record = apache_avro::types::Record::new(&schema).expect("record schema");
        record.put("station_id", 66_062_i64);
        record.put("station_name", "SYDNEY (OBSERVATORY HILL)");
        record.put("date", Value::Date(18_212));
        for field in [
            "min_temp_c",
            "rain_mm",
            "max_gust_kmh",
            "temp_9am_c",
            "rh_9am_pct",
            "wind_9am_kmh",
            "temp_3pm_c",
            "rh_3pm_pct",
            "wind_3pm_kmh",
            "mslp_3pm_hpa",
        ] {
            record.put(field, Value::Union(0, Box::new(Value::Null)));
        }
        record.put("wind_dir_3pm", Value::Union(0, Box::new(Value::Null)));
        record.put("max_temp_c", Value::Union(1, Box::new(Value::Double(26.5))));
        if let Some(ms) = observed_at {
            record.put(
                "observed_at",
                Value::Union(1, Box::new(Value::TimestampMillis(ms))),
            );
        }
        frame(
            id,
            &apache_avro::to_avro_datum(&schema, record).expect("datum"),
        )
    }

    #[test]
    fn v1_weather_reads_as_a_daily_summary_and_v2_keeps_its_observation_time() {
        let schemas = Schemas::bundled().expect("bundled");
        let v1 = framed_weather(&schemas, WEATHER_V1_ID, None);
        let read: WeatherObservation = schemas.decode(&v1).expect("v1 reads");
        assert_eq!(read.date.to_string(), "2019-11-12");
        assert_eq!((read.observed_at, read.max_temp_c), (None, Some(26.5)));

        let v2 = framed_weather(&schemas, WEATHER_ID, Some(1_573_538_400_000));
        let read: WeatherObservation = schemas.decode(&v2).expect("v2 reads");
        assert_eq!(
            read.observed_at.map(|t| t.to_rfc3339()),
            Some("2019-11-12T06:00:00+00:00".to_owned())
        );
    }

    /// Events with every optional part present and absent, and every weather status.
    fn varied_events() -> Vec<FireEventV2> {
        use crate::event::{SimilarEvent, WeatherStatus};
        let base: FireEventV2 = serde_json::from_value(serde_json::json!({
            "event_id": "fd_1",
            "source": {"provider": "NASA FIRMS", "satellite": "Terra", "instrument": "MODIS", "version": "6.3"},
            "detection_time": 1_568_086_800_000_i64,
            "location": {"latitude": -33.9, "longitude": 150.1},
            "fire_characteristics": {"brightness_k": 330.5, "brightness_background_k": 295.1, "frp_mw": 25.3,
                "scan_km": 1.0, "track_km": 1.0, "confidence": "high", "confidence_percent": 80.0,
                "daytime": true, "detection_type": 0},
            "weather_status": "matched",
            "weather_conditions": {"station_id": 66037, "station_name": "SYDNEY AIRPORT AMO",
                "distance_km": 12.5, "observation_date": "2019-09-10", "age_hours": 2.5,
                "min_temp_c": 12.0, "max_temp_c": 31.2, "rain_mm": 0.0, "rh_3pm_pct": 18.0,
                "wind_3pm_kmh": 35.0, "max_gust_kmh": 61.0,
                "fire_weather": {"date": "2019-09-10", "ffmc": 92.1, "dmc": 40.2, "dc": 310.5,
                    "isi": 12.3, "bui": 60.1, "fwi": 25.4, "dsr": 9.1, "danger_class": "very high",
                    "days_in_series": 40}},
            "sensor_summary": {"reading_count": 3, "mean_temperature_c": 33.0, "min_humidity_pct": 15.0,
                "max_pm25_ugm3": 80.5},
            "impact_assessment": {"anomalies": ["fire_under_high_humidity"]},
            "ml_predictions": [{"model": "spread-risk", "version": "3", "name": "p_spread", "value": 0.91}],
            "model_version": "event-encoder@2",
            "ingested_at": 1_568_090_000_000_i64,
            "correlation_id": "inc_7"
        }))
        .expect("a full event");
        let mut events = vec![base.clone()];
        let statuses = [
            WeatherStatus::Matched,
            WeatherStatus::NoStationInRange,
            WeatherStatus::NoRecentObservation,
            WeatherStatus::NoReportingStation,
            WeatherStatus::StaleObservation,
        ];
        for (i, status) in statuses.into_iter().enumerate() {
            let mut event = base.clone();
            event.weather_status = Some(status);
            event.similar_events = Some(
                (0..i)
                    .map(|n| SimilarEvent {
                        event_id: format!("fd_{n}"),
                        distance: n as f64 * 0.25,
                    })
                    .collect(),
            );
            event.revision = (i % 2 == 1).then_some(i as i32);
            events.push(event);
        }
        let mut bare = base;
        bare.weather_conditions = None;
        bare.weather_status = None;
        bare.fire_characteristics.detection_type = None;
        bare.sensor_summary = None;
        bare.impact_assessment = None;
        bare.ml_predictions = None;
        bare.model_version = None;
        bare.ingested_at = None;
        bare.correlation_id = None;
        bare.fire_characteristics.confidence_percent = None;
        events.push(bare);
        events
    }

    #[test]
    fn encoding_a_fire_event_directly_gives_the_generic_bytes() {
        let schemas = Schemas::bundled().expect("bundled");
        for event in varied_events() {
            let direct = schemas.encode_fire_event(&event).expect("direct");
            let generic = schemas
                .encode_framed(schemas.output_id, &schemas.readers.fire_event, &event)
                .expect("generic");
            assert_eq!(direct, generic, "{event:?}");
            assert_eq!(schemas.decode_fire_event(&direct).expect("decodes"), event);
        }
    }

    #[test]
    fn a_v2_reader_reads_v1_framed_events() {
        let schemas = Schemas::bundled().expect("bundled");
        let v1 = schemas.fixed(FIRE_EVENT_V1_ID).expect("v1");
        let event = serde_json::json!({
            "event_id": "fd_1",
            "source": {"provider": "NASA FIRMS", "satellite": "Terra", "instrument": "MODIS", "version": "6.3"},
            "detection_time": 1_568_086_800_000_i64,
            "location": {"latitude": -33.9, "longitude": 150.1},
            "fire_characteristics": {"brightness_k": 330.5, "brightness_background_k": 295.1, "frp_mw": 25.3,
                "scan_km": 1.0, "track_km": 1.0, "confidence": "high", "confidence_percent": 80.0,
                "daytime": true, "detection_type": 0},
            "weather_conditions": null
        });
        let framed = schemas
            .encode_framed(FIRE_EVENT_V1_ID, &v1, &event)
            .expect("v1 encodes");
        let read = schemas.decode_fire_event(&framed).expect("v2 reads v1");
        assert_eq!(read.event_id, "fd_1");
        assert_eq!(read.correlation_id, None);
        assert_eq!(read.similar_events, None);
        assert!((read.fire_characteristics.frp_mw - 25.3).abs() < 1e-9);
    }
}
