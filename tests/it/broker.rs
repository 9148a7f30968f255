//! A tansu Kafka-protocol broker for tests and benches: in memory, on a free loopback port,
//! started here and killed on drop. Shared by `tests/it/kafka.rs` and `benches/stream.rs`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The tansu binary: `FIRESIGHT_TANSU`, or where `scripts/setup.sh` installs it.
fn tansu() -> PathBuf {
    let path = std::env::var_os("FIRESIGHT_TANSU").map_or_else(
        || PathBuf::from("/var/cache/firesight/tools/bin/tansu"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is missing: scripts/setup.sh installs the tansu broker (or set FIRESIGHT_TANSU)",
        path.display()
    );
    path
}

/// A tansu broker with in-memory storage on a free loopback port, killed on drop; or a broker
/// running elsewhere ([`Broker::external`]), left as it is.
pub struct Broker {
    child: Option<Child>,
    /// `host:port` for `bootstrap.servers`.
    pub address: String,
    /// Where tansu itself listens, in plain TCP (its topic CLI connects there).
    plain: String,
    /// librdkafka properties every client of this broker needs (TLS, for one behind TLS).
    client: Vec<(String, String)>,
}

impl Broker {
    pub fn start() -> Self {
        let port = free_port();
        Self::start_advertising(port, port)
    }

    /// tansu on `port`, telling clients to connect to `advertised` (another port in front of it).
    fn start_advertising(port: u16, advertised: u16) -> Self {
        let plain = format!("127.0.0.1:{port}");
        let address = format!("127.0.0.1:{advertised}");
        let child = Command::new(tansu())
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &format!("tcp://{plain}")])
            .args(["--advertised-listener-url", &format!("tcp://{address}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        let broker = Self {
            child: Some(child),
            address,
            plain,
            client: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&broker.plain).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                broker.plain
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// A broker reached over TLS only: tansu 0.6.0 does not serve TLS (its `--cert` is ignored),
    /// so a TLS-terminating proxy with `server`'s certificate stands in front of it and tansu
    /// advertises the proxy. Clients trust the CA in `ca_file`.
    pub fn start_behind_tls(server: rustls::ServerConfig, ca_file: &std::path::Path) -> Self {
        let front = TcpListener::bind("127.0.0.1:0").expect("bind the TLS front");
        let advertised = front.local_addr().expect("addr").port();
        let mut broker = Self::start_advertising(free_port(), advertised);
        tls_front(front, broker.plain.clone(), server);
        broker.client = vec![
            ("security.protocol".into(), "ssl".into()),
            ("ssl.ca.location".into(), ca_file.display().to_string()),
        ];
        broker
    }

    /// As [`Broker::start_behind_tls`], asking every client to authenticate with SASL as
    /// `sasl` says: the shape of a managed cluster (`SASL_SSL`). tansu 0.6.0's own SASL keeps
    /// SCRAM users in its storage, which a test cannot fill while authentication is on, so a
    /// SASL front written here, between the TLS front and tansu, does the exchange and checks
    /// the password (see [`sasl_front`]).
    pub fn start_behind_tls_with_sasl(
        server: rustls::ServerConfig,
        ca_file: &std::path::Path,
        sasl: Sasl,
    ) -> Self {
        let front = TcpListener::bind("127.0.0.1:0").expect("bind the TLS front");
        let sasl_listener = TcpListener::bind("127.0.0.1:0").expect("bind the SASL front");
        let advertised = front.local_addr().expect("addr").port();
        let sasl_address = sasl_listener.local_addr().expect("addr").to_string();
        let mut broker = Self::start_advertising(free_port(), advertised);
        broker.client = vec![
            ("security.protocol".into(), "sasl_ssl".into()),
            ("ssl.ca.location".into(), ca_file.display().to_string()),
            ("sasl.mechanism".into(), sasl.mechanism.into()),
            ("sasl.username".into(), sasl.user.clone()),
            ("sasl.password".into(), sasl.password.clone()),
        ];
        sasl_front(sasl_listener, broker.plain.clone(), sasl);
        tls_front(front, sasl_address, server);
        broker
    }

    /// A client configuration for this broker: its address and what its clients need.
    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.address);
        for (key, value) in &self.client {
            config.set(key, value);
        }
        config
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the broker process: a broker that hangs without
    /// closing its connections, the hardest outage for a client to tell from a slow one.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a broker this test started");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal}");
    }

    /// A broker someone else runs (a real Kafka, say); topics are made through the admin API.
    #[cfg_attr(
        not(feature = "kafka-live"),
        expect(
            dead_code,
            reason = "only tests/it/kafka_live.rs, behind the kafka-live feature"
        )
    )]
    pub fn external(address: &str) -> Self {
        Self {
            child: None,
            address: address.to_owned(),
            plain: address.to_owned(),
            client: Vec::new(),
        }
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        if self.child.is_none() {
            return self.create_topic_by_admin(name, partitions);
        }
        let status = Command::new(tansu())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.plain)])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create runs");
        assert!(status.success(), "creating topic {name} failed");
    }

    fn create_topic_by_admin(&self, name: &str, partitions: u32) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().expect("admin client");
        let topic = NewTopic::new(name, partitions as i32, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results =
            block_on(admin.create_topics([&topic], &options)).expect("CreateTopics answered");
        for result in results {
            result.unwrap_or_else(|(topic, code)| panic!("creating topic {topic} failed: {code}"));
        }
    }

    /// Deletes topics through the admin API (a live broker keeps what a test made otherwise).
    #[cfg_attr(
        not(feature = "kafka-live"),
        expect(
            dead_code,
            reason = "only tests/it/kafka_live.rs, behind the kafka-live feature"
        )
    )]
    pub fn delete_topics(&self, names: &[&str]) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().expect("admin client");
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let _ = block_on(admin.delete_topics(names, &options));
    }

    pub fn producer(&self) -> BaseProducer<Deliveries> {
        self.config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.max.bytes", "16000000")
            .create_with_context(Deliveries::default())
            .expect("producer")
    }

    /// Sends keyed records and waits until the broker has acknowledged every one.
    pub fn produce(&self, topic: &str, records: &[(String, Vec<u8>)]) {
        self.produce_with(self.producer(), topic, records);
    }

    fn produce_with(
        &self,
        producer: BaseProducer<Deliveries>,
        topic: &str,
        records: &[(String, Vec<u8>)],
    ) {
        for (key, payload) in records {
            let mut record = BaseRecord::to(topic)
                .key(key.as_str())
                .payload(payload.as_slice());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(60))
            .expect("every record acknowledged");
        let deliveries = producer.context();
        assert_eq!(
            deliveries.failed.load(Ordering::Acquire),
            0,
            "the broker refused records sent to {topic}: {:?}",
            deliveries.first_error.lock().ok().and_then(|e| e.clone())
        );
        assert_eq!(
            deliveries.delivered.load(Ordering::Acquire),
            records.len(),
            "acknowledged by {topic}"
        );
    }

    /// Every record of a topic from the start, read until `done` holds (or the timeout).
    pub fn read_until(
        &self,
        topic: &str,
        timeout: Duration,
        done: impl Fn(&[OwnedMessage]) -> bool,
    ) -> Vec<OwnedMessage> {
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", "firesight-test-reader")
            .set("enable.auto.commit", "false")
            .set("fetch.max.bytes", "52428800")
            .set("max.partition.fetch.bytes", "16000000")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        for partition in metadata.topics()[0].partitions() {
            tpl.add_partition_offset(topic, partition.id(), Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        // `done` may look at every record, so it is asked only when the topic pauses or after
        // every thousand records, not after each one.
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    out.push(message.detach());
                    if out.len() % 1000 == 0 && done(&out) {
                        break;
                    }
                }
                _ => {
                    if done(&out) {
                        break;
                    }
                }
            }
        }
        out
    }
}

/// Waits for an admin request (the admin client runs its own thread; any executor will do).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Counts a producer's acknowledgements and refusals.
#[derive(Default)]
pub struct Deliveries {
    delivered: AtomicUsize,
    failed: AtomicUsize,
    first_error: std::sync::Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::AcqRel);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::AcqRel);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Serves each connection `front` accepts with `serve`, on a thread of its own for the rest of
/// the process.
fn serve_each<F, S>(front: TcpListener, serve: S)
where
    S: Fn(tokio::net::TcpStream) -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            front.set_nonblocking(true).expect("nonblocking");
            let front = tokio::net::TcpListener::from_std(front).expect("listener");
            while let Ok((tcp, _)) = front.accept().await {
                tokio::spawn(serve(tcp));
            }
        });
    });
}

/// Accepts TLS on `front` (with `server`'s certificate) and relays each connection's bytes to
/// `upstream` in plain TCP.
fn tls_front(front: TcpListener, upstream: String, server: rustls::ServerConfig) {
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
    serve_each(front, move |tcp| {
        let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
        async move {
            // A client that refuses the certificate ends here.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        }
    });
}

/// How the SASL front authenticates: the mechanism it accepts and the one user it knows.
#[derive(Clone)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: &'static str,
    pub user: String,
    pub password: String,
}

/// Kafka's SASL exchange, done here in front of a broker that does not ask for it: on each
/// connection, `ApiVersions` is relayed to `upstream`; `SaslHandshake` accepts the one
/// mechanism; `SaslAuthenticate` checks the password (PLAIN: `authzid \0 user \0 password`;
/// SCRAM, RFC 5802: the client's proof over a salted password, then the server's signature
/// back) and answers SASL_AUTHENTICATION_FAILED when it is wrong; any other request before that
/// closes the connection, as a broker with SASL listeners does. After it, bytes go both ways
/// unread.
fn sasl_front(front: TcpListener, upstream: String, sasl: Sasl) {
    serve_each(front, move |client| {
        let served = sasl::serve(client, upstream.clone(), sasl.clone());
        async move {
            let _ = served.await;
        }
    });
}

/// The SASL front's protocol (see [`sasl_front`]).
mod sasl {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};
    use sha2::Digest;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::Sasl;

    const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    const SASL_AUTHENTICATION_FAILED: i16 = 58;
    const ITERATIONS: u32 = 4096;

    async fn frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let length = stream.read_i32().await.ok()?;
        let mut body = vec![0; usize::try_from(length).ok().filter(|&n| n < 1 << 20)?];
        stream.read_exact(&mut body).await.ok()?;
        Some(body)
    }

    async fn send(stream: &mut TcpStream, body: &[u8]) -> Option<()> {
        stream
            .write_i32(i32::try_from(body.len()).ok()?)
            .await
            .ok()?;
        stream.write_all(body).await.ok()
    }

    /// A SaslAuthenticate request's bytes, from `at` (v0, v1: int32 length; v2: the header's
    /// tag buffer, then an unsigned varint of the length + 1).
    fn auth_bytes(request: &[u8], at: usize, flexible: bool) -> Option<&[u8]> {
        if !flexible {
            let length = i32::from_be_bytes(request.get(at..at + 4)?.try_into().ok()?);
            return request.get(at + 4..at + 4 + usize::try_from(length).ok()?);
        }
        let (mut length, mut shift, mut i) = (0usize, 0, at + 1);
        loop {
            let byte = *request.get(i)?;
            length |= usize::from(byte & 0x7f) << shift;
            i += 1;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        request.get(i..i + length.checked_sub(1)?)
    }

    /// A SaslAuthenticate response of `version`.
    fn authenticate_reply(
        correlation: &[u8],
        version: i16,
        failure: Option<&str>,
        bytes: &[u8],
    ) -> Vec<u8> {
        let code = if failure.is_some() {
            SASL_AUTHENTICATION_FAILED
        } else {
            0
        };
        let mut out = correlation.to_vec();
        if version >= 2 {
            out.push(0); // the response header's tag buffer
            out.extend_from_slice(&code.to_be_bytes());
            match failure {
                Some(text) => {
                    out.push(u8::try_from(text.len() + 1).unwrap_or(u8::MAX));
                    out.extend_from_slice(text.as_bytes());
                }
                None => out.push(0),
            }
            out.push(u8::try_from(bytes.len() + 1).unwrap_or(u8::MAX));
            out.extend_from_slice(bytes);
            out.extend_from_slice(&0i64.to_be_bytes());
            out.push(0);
            return out;
        }
        out.extend_from_slice(&code.to_be_bytes());
        match failure {
            Some(text) => {
                out.extend_from_slice(&i16::try_from(text.len()).unwrap_or(0).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            None => out.extend_from_slice(&(-1i16).to_be_bytes()),
        }
        out.extend_from_slice(&i32::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(bytes);
        if version >= 1 {
            out.extend_from_slice(&0i64.to_be_bytes());
        }
        out
    }

    fn hmac(wide: bool, key: &[u8], data: &[u8]) -> Vec<u8> {
        if wide {
            let mut mac = Hmac::<sha2::Sha512>::new_from_slice(key).expect("any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        } else {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }

    fn hash(wide: bool, data: &[u8]) -> Vec<u8> {
        if wide {
            sha2::Sha512::digest(data).to_vec()
        } else {
            sha2::Sha256::digest(data).to_vec()
        }
    }

    /// RFC 5802's Hi(): PBKDF2 with HMAC as the PRF, one block.
    fn salted(wide: bool, password: &str, salt: &[u8]) -> Vec<u8> {
        let mut block = salt.to_vec();
        block.extend_from_slice(&1u32.to_be_bytes());
        let mut u = hmac(wide, password.as_bytes(), &block);
        let mut out = u.clone();
        for _ in 1..ITERATIONS {
            u = hmac(wide, password.as_bytes(), &u);
            out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
        }
        out
    }

    /// `name=value` attributes of a SCRAM message.
    fn attribute(message: &str, name: char) -> Option<&str> {
        message
            .split(',')
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
    }

    /// A SCRAM exchange in progress: what the server sent first.
    struct Scram {
        client_first_bare: String,
        server_first: String,
        salted: Vec<u8>,
    }

    pub(super) async fn serve(mut client: TcpStream, upstream: String, sasl: Sasl) -> Option<()> {
        let mut broker = TcpStream::connect(&upstream).await.ok()?;
        let wide = sasl.mechanism == "SCRAM-SHA-512";
        let mut scram: Option<Scram> = None;
        loop {
            let request = frame(&mut client).await?;
            let api_key = i16::from_be_bytes(request.get(0..2)?.try_into().ok()?);
            let version = i16::from_be_bytes(request.get(2..4)?.try_into().ok()?);
            let correlation = request.get(4..8)?.to_vec();
            let client_id = i16::from_be_bytes(request.get(8..10)?.try_into().ok()?);
            let body_at = 10 + usize::try_from(client_id.max(0)).ok()?;
            match api_key {
                // ApiVersions: the broker's own answer.
                18 => {
                    send(&mut broker, &request).await?;
                    let answer = frame(&mut broker).await?;
                    send(&mut client, &answer).await?;
                }
                // SaslHandshake.
                17 => {
                    let length =
                        i16::from_be_bytes(request.get(body_at..body_at + 2)?.try_into().ok()?);
                    let asked =
                        request.get(body_at + 2..body_at + 2 + usize::try_from(length).ok()?)?;
                    let code = if asked == sasl.mechanism.as_bytes() {
                        0
                    } else {
                        UNSUPPORTED_SASL_MECHANISM
                    };
                    let mut answer = correlation;
                    answer.extend_from_slice(&code.to_be_bytes());
                    answer.extend_from_slice(&1i32.to_be_bytes());
                    answer.extend_from_slice(
                        &i16::try_from(sasl.mechanism.len()).ok()?.to_be_bytes(),
                    );
                    answer.extend_from_slice(sasl.mechanism.as_bytes());
                    send(&mut client, &answer).await?;
                }
                // SaslAuthenticate.
                36 => {
                    let given = auth_bytes(&request, body_at, version >= 2)?;
                    let failed = "Authentication failed: invalid credentials";
                    if sasl.mechanism == "PLAIN" {
                        let expected = format!("\0{}\0{}", sasl.user, sasl.password);
                        let passed = given == expected.as_bytes();
                        let reply = authenticate_reply(
                            &correlation,
                            version,
                            (!passed).then_some(failed),
                            &[],
                        );
                        send(&mut client, &reply).await?;
                        if !passed {
                            return None;
                        }
                        break;
                    }
                    let text = std::str::from_utf8(given).ok()?;
                    match scram.take() {
                        None => {
                            // client-first: `n,,n=user,r=nonce`.
                            let bare = text.splitn(3, ',').nth(2)?.to_owned();
                            let nonce = attribute(&bare, 'r')?;
                            let user_ok = attribute(&bare, 'n') == Some(sasl.user.as_str());
                            let salt = hash(false, format!("salt:{}", sasl.user).as_bytes());
                            let server_nonce = format!(
                                "{nonce}{:x}",
                                std::time::SystemTime::now()
                                    .duration_since(std::time::UNIX_EPOCH)
                                    .ok()?
                                    .as_nanos()
                            );
                            let server_first = format!(
                                "r={server_nonce},s={},i={ITERATIONS}",
                                STANDARD.encode(&salt[..16])
                            );
                            let reply = authenticate_reply(
                                &correlation,
                                version,
                                None,
                                server_first.as_bytes(),
                            );
                            send(&mut client, &reply).await?;
                            // An unknown user goes on to fail at the proof, as SCRAM asks.
                            let password = if user_ok { sasl.password.as_str() } else { "" };
                            scram = Some(Scram {
                                client_first_bare: bare,
                                server_first,
                                salted: salted(wide, password, &salt[..16]),
                            });
                        }
                        Some(exchange) => {
                            // client-final: `c=…,r=…,p=proof`.
                            let (without_proof, proof) = text.rsplit_once(",p=")?;
                            let proof = STANDARD.decode(proof).ok()?;
                            let auth_message = format!(
                                "{},{},{without_proof}",
                                exchange.client_first_bare, exchange.server_first
                            );
                            let client_key = hmac(wide, &exchange.salted, b"Client Key");
                            let stored_key = hash(wide, &client_key);
                            let signature = hmac(wide, &stored_key, auth_message.as_bytes());
                            let recovered: Vec<u8> =
                                proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
                            let passed = proof.len() == signature.len()
                                && hash(wide, &recovered) == stored_key;
                            let server_key = hmac(wide, &exchange.salted, b"Server Key");
                            let verifier = format!(
                                "v={}",
                                STANDARD.encode(hmac(wide, &server_key, auth_message.as_bytes()))
                            );
                            let reply = authenticate_reply(
                                &correlation,
                                version,
                                (!passed).then_some(failed),
                                if passed { verifier.as_bytes() } else { &[] },
                            );
                            send(&mut client, &reply).await?;
                            if !passed {
                                return None;
                            }
                            break;
                        }
                    }
                }
                // Anything else before authenticating: a SASL listener closes the connection.
                _ => return None,
            }
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
        Some(())
    }
}
