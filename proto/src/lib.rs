//! Starling's wire contract: the protobuf messages that devices and the aggregation server
//! exchange. The `.proto` sources live in `proto/starling/v1/`; `docs/protocol.md` explains the
//! encoding and the rules for evolving it.

/// Version 1 of the wire contract.
pub mod v1 {
    #![allow(missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/starling.v1.rs"));
}

/// The media type of every protobuf body: `application/x-protobuf`.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";

pub mod batch;

pub mod quantize;
