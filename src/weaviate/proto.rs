//! The subset of Weaviate's gRPC API (package `weaviate.v1`) that FireSight sends and reads.
//!
//! Written by hand from Weaviate's published `.proto` files (`grpc/proto/v1/` in the Weaviate
//! repository: `weaviate.proto`, `search_get.proto`, `base_search.proto`, `base.proto`,
//! `properties.proto`). Field numbers and wire types are theirs; fields FireSight never sets or
//! reads are left out, which protobuf allows: a decoder skips fields it does not know, and an
//! absent field is its default. Hand-written messages keep `protoc` out of the build.
//!
//! `tests/it/weaviate_grpc.rs` checks the bytes these messages produce against those field
//! numbers with its own wire reader, independent of `prost`.

#![expect(
    missing_docs,
    reason = "field meanings are Weaviate's; the module docs say where they are"
)]

use std::collections::HashMap;

/// gRPC path of the `Search` method of service `weaviate.v1.Weaviate`.
pub const SEARCH_PATH: &str = "/weaviate.v1.Weaviate/Search";

/// `search_get.proto`: `SearchRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchRequest {
    #[prost(string, tag = "1")]
    pub collection: String,
    #[prost(string, tag = "10")]
    pub tenant: String,
    #[prost(message, optional, tag = "20")]
    pub properties: Option<PropertiesRequest>,
    #[prost(message, optional, tag = "21")]
    pub metadata: Option<MetadataRequest>,
    #[prost(uint32, tag = "30")]
    pub limit: u32,
    #[prost(message, optional, tag = "40")]
    pub filters: Option<Filters>,
    #[prost(message, optional, tag = "43")]
    pub near_vector: Option<NearVector>,
    /// Asks for the reply layout of Weaviate 1.27 and later (properties as a typed map).
    #[prost(bool, tag = "102")]
    pub uses_127_api: bool,
}

/// `search_get.proto`: `MetadataRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetadataRequest {
    #[prost(bool, tag = "1")]
    pub uuid: bool,
    #[prost(bool, tag = "5")]
    pub distance: bool,
    /// Named vectors to return with each object.
    #[prost(string, repeated, tag = "10")]
    pub vectors: Vec<String>,
}

/// `search_get.proto`: `PropertiesRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertiesRequest {
    #[prost(string, repeated, tag = "1")]
    pub non_ref_properties: Vec<String>,
    #[prost(bool, tag = "11")]
    pub return_all_nonref_properties: bool,
}

/// `base_search.proto`: `NearVector`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NearVector {
    #[prost(double, optional, tag = "3")]
    pub distance: Option<f64>,
    #[prost(message, optional, tag = "6")]
    pub targets: Option<Targets>,
    #[prost(message, repeated, tag = "9")]
    pub vectors: Vec<Vectors>,
}

/// `base_search.proto`: `Targets`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Targets {
    #[prost(string, repeated, tag = "1")]
    pub target_vectors: Vec<String>,
}

/// `base.proto`: `Vectors`; `vector_bytes` holds little-endian `f32`s.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Vectors {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(bytes = "vec", tag = "3")]
    pub vector_bytes: Vec<u8>,
    #[prost(enumeration = "VectorType", tag = "4")]
    pub r#type: i32,
}

/// `base.proto`: `Vectors.VectorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum VectorType {
    Unspecified = 0,
    SingleFp32 = 1,
    MultiFp32 = 2,
}

/// `base.proto`: `Filters`. Exactly one test value is set on a leaf; `filters` on AND/OR/NOT.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Filters {
    #[prost(enumeration = "Operator", tag = "1")]
    pub operator: i32,
    #[prost(message, repeated, tag = "3")]
    pub filters: Vec<Filters>,
    #[prost(oneof = "TestValue", tags = "4, 5, 7, 9")]
    pub test_value: Option<TestValue>,
    #[prost(message, optional, tag = "20")]
    pub target: Option<FilterTarget>,
}

/// `base.proto`: the `test_value` oneof of `Filters` (the variants FireSight uses).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TestValue {
    #[prost(string, tag = "4")]
    ValueText(String),
    #[prost(int64, tag = "5")]
    ValueInt(i64),
    #[prost(double, tag = "7")]
    ValueNumber(f64),
    #[prost(message, tag = "9")]
    ValueTextArray(TextArray),
}

/// `base.proto`: `TextArray`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TextArray {
    #[prost(string, repeated, tag = "1")]
    pub values: Vec<String>,
}

/// `base.proto`: `FilterTarget` (only the plain-property form).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FilterTarget {
    #[prost(oneof = "FilterTargetKind", tags = "1")]
    pub target: Option<FilterTargetKind>,
}

/// `base.proto`: the `target` oneof of `FilterTarget`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum FilterTargetKind {
    #[prost(string, tag = "1")]
    Property(String),
}

/// `base.proto`: `Filters.Operator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum Operator {
    Unspecified = 0,
    Equal = 1,
    NotEqual = 2,
    GreaterThan = 3,
    GreaterThanEqual = 4,
    LessThan = 5,
    LessThanEqual = 6,
    And = 7,
    Or = 8,
    WithinGeoRange = 9,
    Like = 10,
    IsNull = 11,
    ContainsAny = 12,
    ContainsAll = 13,
    ContainsNone = 14,
    Not = 15,
}

/// `search_get.proto`: `SearchReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchReply {
    #[prost(float, tag = "1")]
    pub took: f32,
    #[prost(message, repeated, tag = "2")]
    pub results: Vec<SearchResult>,
}

/// `search_get.proto`: `SearchResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchResult {
    #[prost(message, optional, tag = "1")]
    pub properties: Option<PropertiesResult>,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<MetadataResult>,
}

/// `search_get.proto`: `MetadataResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetadataResult {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(float, tag = "7")]
    pub distance: f32,
    #[prost(bool, tag = "8")]
    pub distance_present: bool,
    #[prost(message, repeated, tag = "23")]
    pub vectors: Vec<Vectors>,
}

/// `search_get.proto`: `PropertiesResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertiesResult {
    #[prost(message, optional, tag = "11")]
    pub non_ref_props: Option<Properties>,
}

/// `properties.proto`: `Properties`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Properties {
    #[prost(map = "string, message", tag = "1")]
    pub fields: HashMap<String, Value>,
}

/// `properties.proto`: `Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(oneof = "Kind", tags = "1, 3, 6, 7, 8, 13")]
    pub kind: Option<Kind>,
}

/// `properties.proto`: the `kind` oneof of `Value` (the scalar variants).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(double, tag = "1")]
    NumberValue(f64),
    #[prost(bool, tag = "3")]
    BoolValue(bool),
    #[prost(string, tag = "6")]
    DateValue(String),
    #[prost(string, tag = "7")]
    UuidValue(String),
    #[prost(int64, tag = "8")]
    IntValue(i64),
    #[prost(string, tag = "13")]
    TextValue(String),
}

/// Packs a vector the way `Vectors.vector_bytes` carries it.
pub fn pack(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Unpacks `Vectors.vector_bytes`; `None` when the length is not a whole number of `f32`s.
pub fn unpack(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}
