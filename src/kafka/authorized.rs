//! What the cluster lets rowferry's principal do: the *authorized operations* Kafka reports for
//! the cluster and for each topic (KIP-430; librdkafka's DescribeCluster and DescribeTopics with
//! `include_authorized_operations`). `rowferry check` compares them with what rowferry needs and
//! names a missing permission, where a produce or a read would only fail later with a bare
//! authorization error. No special permission is needed to ask: Kafka reports a principal's
//! operations on what it can Describe (and "not authorized" for a topic it cannot).
//!
//! rust-rdkafka wraps neither call, so this module speaks to librdkafka's C API directly — the
//! one module of rowferry allowed `unsafe`. Every object it creates (options, topic collection,
//! queue, event) is owned by a guard that destroys it exactly once; everything read from a result
//! (names, operation arrays) is copied out before the event that owns it is destroyed; pointers
//! are checked for null before use.
#![allow(unsafe_code)]

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

/// An ACL operation (Kafka's `AclOperation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    Other,
}

impl Operation {
    fn from_rd(op: rd::rd_kafka_AclOperation_t) -> Operation {
        use rd::rd_kafka_AclOperation_t::*;
        match op {
            RD_KAFKA_ACL_OPERATION_READ => Operation::Read,
            RD_KAFKA_ACL_OPERATION_WRITE => Operation::Write,
            RD_KAFKA_ACL_OPERATION_CREATE => Operation::Create,
            RD_KAFKA_ACL_OPERATION_DELETE => Operation::Delete,
            RD_KAFKA_ACL_OPERATION_ALTER => Operation::Alter,
            RD_KAFKA_ACL_OPERATION_DESCRIBE => Operation::Describe,
            RD_KAFKA_ACL_OPERATION_CLUSTER_ACTION => Operation::ClusterAction,
            RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS => Operation::DescribeConfigs,
            RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS => Operation::AlterConfigs,
            RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE => Operation::IdempotentWrite,
            _ => Operation::Other,
        }
    }

    /// The name `kafka-acls.sh --operation` takes.
    pub fn acl_name(self) -> &'static str {
        match self {
            Operation::Read => "Read",
            Operation::Write => "Write",
            Operation::Create => "Create",
            Operation::Delete => "Delete",
            Operation::Alter => "Alter",
            Operation::Describe => "Describe",
            Operation::ClusterAction => "ClusterAction",
            Operation::DescribeConfigs => "DescribeConfigs",
            Operation::AlterConfigs => "AlterConfigs",
            Operation::IdempotentWrite => "IdempotentWrite",
            Operation::Other => "Other",
        }
    }
}

/// A topic as described: its authorized operations, or why it could not be described
/// (`UnknownTopicOrPartition`: it does not exist; `TopicAuthorizationFailed`: no Describe).
pub type TopicOperations = Result<Vec<Operation>, RDKafkaErrorCode>;

/// The principal's operations on the cluster.
pub fn cluster<C: ClientContext>(client: &Client<C>, limit: Duration) -> Result<Vec<Operation>, String> {
    let request = Request::new(client, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER, limit)?;
    // SAFETY: the client, options and queue are live for the call (the guards outlive it).
    unsafe { rd::rd_kafka_DescribeCluster(client.native_ptr(), request.options.0, request.queue.0) };
    let event = request.wait(rd::RD_KAFKA_EVENT_DESCRIBECLUSTER_RESULT)?;
    // SAFETY: the event is a DescribeCluster result (its type was checked); the array it returns
    // is owned by the event and copied before the event is destroyed.
    unsafe {
        let result = rd::rd_kafka_event_DescribeCluster_result(event.0);
        if result.is_null() {
            return Err("no DescribeCluster result".into());
        }
        let mut n = 0;
        let ops = rd::rd_kafka_DescribeCluster_result_authorized_operations(result, &mut n);
        Ok(copy_operations(ops, n))
    }
}

/// The principal's operations on each of `topics`.
pub fn topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    limit: Duration,
) -> Result<HashMap<String, TopicOperations>, String> {
    if topics.is_empty() {
        return Ok(HashMap::new());
    }
    let request = Request::new(client, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, limit)?;
    let names: Vec<CString> =
        topics.iter().map(|t| CString::new(t.as_str()).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
    let mut pointers: Vec<*const std::ffi::c_char> = names.iter().map(|n| n.as_ptr()).collect();
    // SAFETY: `pointers` holds `pointers.len()` valid C strings (kept alive by `names`), which
    // librdkafka copies into the collection.
    let collection = Guard(
        unsafe { rd::rd_kafka_TopicCollection_of_topic_names(pointers.as_mut_ptr(), pointers.len()) },
        |p| unsafe { rd::rd_kafka_TopicCollection_destroy(p) },
    );
    if collection.0.is_null() {
        return Err("could not build the topic list".into());
    }
    // SAFETY: client, collection, options and queue are live for the call.
    unsafe { rd::rd_kafka_DescribeTopics(client.native_ptr(), collection.0, request.options.0, request.queue.0) };
    let event = request.wait(rd::RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT)?;
    let mut out = HashMap::new();
    // SAFETY: the event is a DescribeTopics result (its type was checked); the descriptions,
    // names, errors and operation arrays are owned by the event and copied out before it is
    // destroyed; each pointer is checked for null.
    unsafe {
        let result = rd::rd_kafka_event_DescribeTopics_result(event.0);
        if result.is_null() {
            return Err("no DescribeTopics result".into());
        }
        let mut n = 0;
        let descriptions = rd::rd_kafka_DescribeTopics_result_topics(result, &mut n);
        for i in 0..n {
            let description = *descriptions.add(i);
            if description.is_null() {
                continue;
            }
            let name = rd::rd_kafka_TopicDescription_name(description);
            if name.is_null() {
                continue;
            }
            let name = CStr::from_ptr(name).to_string_lossy().into_owned();
            let error = rd::rd_kafka_TopicDescription_error(description);
            let code = if error.is_null() { 0 } else { rd::rd_kafka_error_code(error) as i32 };
            let operations = if code != 0 {
                Err(RDKafkaErrorCode::from(rd::rd_kafka_error_code(error)))
            } else {
                let mut count = 0;
                let ops = rd::rd_kafka_TopicDescription_authorized_operations(description, &mut count);
                Ok(copy_operations(ops, count))
            };
            out.insert(name, operations);
        }
    }
    Ok(out)
}

/// Copies `n` operations from `ops` (null: none).
///
/// # Safety
/// `ops` is null or points to `n` initialised operations.
unsafe fn copy_operations(ops: *const rd::rd_kafka_AclOperation_t, n: usize) -> Vec<Operation> {
    if ops.is_null() {
        return Vec::new();
    }
    // SAFETY: as the caller promises.
    unsafe { std::slice::from_raw_parts(ops, n) }.iter().map(|op| Operation::from_rd(*op)).collect()
}

/// A librdkafka object and its destructor, called once on drop.
struct Guard<T>(*mut T, unsafe fn(*mut T));

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from the matching constructor and is destroyed only here.
            unsafe { (self.1)(self.0) }
        }
    }
}

/// The options and reply queue of one admin request.
struct Request {
    options: Guard<rd::rd_kafka_AdminOptions_t>,
    queue: Guard<rd::rd_kafka_queue_t>,
    limit: Duration,
}

impl Request {
    fn new<C: ClientContext>(
        client: &Client<C>,
        api: rd::rd_kafka_admin_op_t,
        limit: Duration,
    ) -> Result<Request, String> {
        // SAFETY: the client is live; the created objects are owned by guards.
        unsafe {
            let options = Guard(rd::rd_kafka_AdminOptions_new(client.native_ptr(), api), |p| {
                rd::rd_kafka_AdminOptions_destroy(p)
            });
            let queue = Guard(rd::rd_kafka_queue_new(client.native_ptr()), |p| rd::rd_kafka_queue_destroy(p));
            if options.0.is_null() || queue.0.is_null() {
                return Err("librdkafka could not make the request".into());
            }
            let error = rd::rd_kafka_AdminOptions_set_include_authorized_operations(options.0, 1);
            if !error.is_null() {
                rd::rd_kafka_error_destroy(error);
                return Err("librdkafka cannot ask for authorized operations".into());
            }
            let mut message = [0 as std::ffi::c_char; 256];
            let millis = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
            rd::rd_kafka_AdminOptions_set_request_timeout(options.0, millis, message.as_mut_ptr(), message.len());
            Ok(Request { options, queue, limit })
        }
    }

    /// The result event of type `kind`, or the request's error.
    fn wait(&self, kind: rd::rd_kafka_event_type_t) -> Result<Guard<rd::rd_kafka_event_t>, String> {
        let deadline = Instant::now() + self.limit + Duration::from_secs(1);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no answer within {:?}", self.limit));
            }
            // SAFETY: the queue is live; the event returned (if any) is owned by the guard.
            let event = Guard(unsafe { rd::rd_kafka_queue_poll(self.queue.0, left.as_millis() as i32) }, |p| unsafe {
                rd::rd_kafka_event_destroy(p)
            });
            if event.0.is_null() {
                continue;
            }
            // SAFETY: the event is live (owned by the guard).
            unsafe {
                if rd::rd_kafka_event_type(event.0) != kind {
                    continue;
                }
                let code = rd::rd_kafka_event_error(event.0);
                if code as i32 != 0 {
                    let text = rd::rd_kafka_event_error_string(event.0);
                    let text =
                        if text.is_null() { String::new() } else { CStr::from_ptr(text).to_string_lossy().into() };
                    return Err(format!("{}: {text}", RDKafkaErrorCode::from(code)));
                }
            }
            return Ok(event);
        }
    }
}
