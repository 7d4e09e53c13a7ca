//! Starts the real `example-service` binary on 127.0.0.1:0 and talks to it
//! with the generated tonic clients and with a raw HTTP/2 client.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use example_service::bookstore::v1 as bs;
use example_service::bookstore::v1::bookstore_client::BookstoreClient;
use example_service::echo::v1::echo_service_client::EchoServiceClient;
use example_service::echo::v1::EchoRequest;
use example_service::google;
use prost::Message;
use tonic::transport::Channel;
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_example-service");

/// The spawned server; killed on drop unless it was stopped with SIGTERM.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn example-service");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("a socket address");
        Server { child, addr }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.expect("connect")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn version(md: &tonic::metadata::MetadataMap) -> Option<&str> {
    md.get("x-bookstore-version").and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn bookstore_and_echo() {
    let server = Server::start();
    let channel = server.channel().await;
    let mut bookstore = BookstoreClient::new(channel.clone());
    let mut echo = EchoServiceClient::new(channel);

    // ListShelves.
    let response = bookstore.list_shelves(()).await.unwrap();
    assert_eq!(version(response.metadata()), Some("1"));
    let shelves = response.into_inner().shelves;
    assert_eq!(
        shelves,
        vec![bs::Shelf { id: 1, theme: "Fiction".into() }, bs::Shelf { id: 2, theme: "History".into() },]
    );

    // GetShelf / not found.
    let shelf = bookstore.get_shelf(bs::GetShelfRequest { shelf: 7 }).await.unwrap().into_inner();
    assert_eq!(shelf, bs::Shelf { id: 7, theme: "Shelf 7".into() });
    let err = bookstore.get_shelf(bs::GetShelfRequest { shelf: 101 }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "shelf 101 not found");
    assert_eq!(version(err.metadata()), Some("1"));

    // GetBook.
    let book = bookstore.get_book(bs::GetBookRequest { name: "shelves/1/books/2".into() }).await.unwrap().into_inner();
    assert_eq!(book.title, "Title of shelves/1/books/2");
    assert_eq!(book.genre, bs::Genre::Fiction as i32);
    assert_eq!(book.published, Some(prost_types::Timestamp { seconds: 1_577_934_245, nanos: 0 }));
    let err = bookstore.get_book(bs::GetBookRequest { name: "shelves/1/books/missing".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "book shelves/1/books/missing not found");

    // UpdateBook appends one tag per mask path.
    let book = bookstore
        .update_book(bs::UpdateBookRequest {
            book: Some(bs::Book { name: "shelves/1/books/1".into(), tags: vec!["x".into()], ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["title".into(), "author.name".into()] }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(book.tags, ["x", "mask:title", "mask:author.name"]);

    // GetBookCover.
    let cover =
        bookstore.get_book_cover(bs::GetBookRequest { name: "shelves/1/books/1".into() }).await.unwrap().into_inner();
    assert_eq!(cover.content_type, "image/png");
    assert_eq!(cover.data, b"\x89PNG cover of shelves/1/books/1");

    // Fail: trailers-only and normal, both with details.
    for trailers_only in [true, false] {
        let err = bookstore.fail(bs::FailRequest { code: 5, message: String::new(), trailers_only }).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "trailers_only={trailers_only}");
        assert_eq!(err.message(), "failure requested");
        assert_eq!(version(err.metadata()), Some("1"));
        assert!(err.metadata().get("x-move-status-to-trailers").is_none());
        let status = google::rpc::Status::decode(err.details()).unwrap();
        assert_eq!(status.code, 5);
        assert_eq!(status.message, "failure requested");
        assert_eq!(status.details.len(), 2);
        assert_eq!(status.details[0].type_url, "type.googleapis.com/bookstore.v1.FailureDetail");
        let detail = bs::FailureDetail::decode(status.details[0].value.as_slice()).unwrap();
        assert_eq!(detail, bs::FailureDetail { reason: "requested".into(), code: 5 });
        assert_eq!(status.details[1].type_url, "type.googleapis.com/google.rpc.ErrorInfo");
        let info = google::rpc::ErrorInfo::decode(status.details[1].value.as_slice()).unwrap();
        assert_eq!(info.reason, "FAIL_REQUESTED");
        assert_eq!(info.domain, "bookstore.example.com");
        assert_eq!(info.metadata.get("code").map(String::as_str), Some("5"));
    }
    let err =
        bookstore.fail(bs::FailRequest { code: 3, message: "bad".into(), trailers_only: false }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "bad"));
    let ok = bookstore.fail(bs::FailRequest::default()).await.unwrap();
    assert_eq!(version(ok.metadata()), Some("1"));

    // GetMetadata.
    let mut request = tonic::Request::new(());
    request.metadata_mut().append("x-test", "one".parse().unwrap());
    request.metadata_mut().append("x-test", "two".parse().unwrap());
    let metadata = bookstore.get_metadata(request).await.unwrap().into_inner().metadata;
    assert_eq!(metadata.get("x-test").map(String::as_str), Some("one,two"));
    assert_eq!(metadata.get("content-type").map(String::as_str), Some("application/grpc"));

    // Echo.
    let mut request = tonic::Request::new(EchoRequest { request: "hello".into(), query: 666 });
    request.metadata_mut().insert("md-hello", "world".parse().unwrap());
    let response = echo.echo_get(request).await.unwrap().into_inner().response;
    assert_eq!(response, "GET md-hello=world request=hello query=666");
    let response = echo.echo_patch(EchoRequest { request: "x".into(), query: 0 }).await.unwrap().into_inner().response;
    assert_eq!(response, "PATCH md-hello= request=x query=0");
}

/// One unary gRPC call over raw HTTP/2: (response headers, body, trailers).
async fn raw_call(
    addr: SocketAddr,
    path: &str,
    message: &impl Message,
) -> (http::response::Parts, Bytes, Option<http::HeaderMap>, bool) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(encoded.len() as u32);
    frame.put_slice(&encoded);
    send.send_data(frame.freeze(), true).unwrap();
    let (parts, mut body) = response.await.unwrap().into_parts();
    let headers_ended_stream = body.is_end_stream();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        data.put(chunk);
    }
    let trailers = body.trailers().await.unwrap();
    (parts, data.freeze(), trailers, headers_ended_stream)
}

#[tokio::test]
async fn fail_status_in_trailers_or_headers() {
    let server = Server::start();

    // trailers_only = false: headers, empty body, then trailers with the status.
    let request = bs::FailRequest { code: 9, message: "nope".into(), trailers_only: false };
    let (parts, body, trailers, ended) = raw_call(server.addr, "/bookstore.v1.Bookstore/Fail", &request).await;
    assert_eq!(parts.status, 200);
    assert!(!ended, "the headers must not end the stream");
    assert_eq!(parts.headers["content-type"], "application/grpc");
    assert_eq!(parts.headers["x-bookstore-version"], "1");
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-move-status-to-trailers"] {
        assert!(!parts.headers.contains_key(name), "{name} in the headers: {:?}", parts.headers);
    }
    assert!(body.is_empty());
    let trailers = trailers.expect("trailers");
    assert_eq!(trailers["grpc-status"], "9");
    assert_eq!(trailers["grpc-message"], "nope");
    assert!(trailers.contains_key("grpc-status-details-bin"));
    assert!(!trailers.contains_key("x-move-status-to-trailers"));

    // trailers_only = true: one header block that ends the stream.
    let request = bs::FailRequest { code: 9, message: "nope".into(), trailers_only: true };
    let (parts, body, trailers, ended) = raw_call(server.addr, "/bookstore.v1.Bookstore/Fail", &request).await;
    assert_eq!(parts.status, 200);
    assert!(ended, "trailers-only: the headers end the stream");
    assert_eq!(parts.headers["grpc-status"], "9");
    assert_eq!(parts.headers["x-bookstore-version"], "1");
    assert!(parts.headers.contains_key("grpc-status-details-bin"));
    assert!(body.is_empty());
    assert!(trailers.is_none());

    // An OK answer is unaffected: message in the body, status in trailers.
    let (parts, mut body, trailers, _) = raw_call(server.addr, "/bookstore.v1.Bookstore/ListShelves", &()).await;
    assert_eq!(parts.headers["x-bookstore-version"], "1");
    assert_eq!(body.get_u8(), 0);
    let len = body.get_u32() as usize;
    assert_eq!(body.len(), len);
    let shelves = bs::ListShelvesResponse::decode(body).unwrap();
    assert_eq!(shelves.shelves.len(), 2);
    assert_eq!(trailers.unwrap()["grpc-status"], "0");

    // Unknown service.
    let (parts, _, _, _) = raw_call(server.addr, "/nope.v1.Nope/Call", &()).await;
    assert_eq!(parts.headers["grpc-status"], "12");
}

#[test]
fn move_status_to_trailers_unit() {
    use http_body::Body as _;
    let status = tonic::Status::with_details_and_metadata(tonic::Code::Aborted, "x", Bytes::from_static(b"d"), {
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert("x-move-status-to-trailers", "1".parse().unwrap());
        md
    });
    let response: http::Response<tonic::body::Body> = status.clone().into_http();
    assert!(response.headers().contains_key("grpc-status"));

    // Another path: untouched apart from the marker.
    let other = example_service::move_status_to_trailers("/bookstore.v1.Bookstore/GetBook", status.clone().into_http());
    assert!(other.headers().contains_key("grpc-status"));
    assert!(!other.headers().contains_key("x-move-status-to-trailers"));

    let moved = example_service::move_status_to_trailers(example_service::FAIL_PATH, response);
    assert!(!moved.headers().contains_key("grpc-status"));
    assert!(!moved.headers().contains_key("x-move-status-to-trailers"));
    assert!(!moved.body().is_end_stream());
}

#[tokio::test]
async fn cli() {
    // descriptor-set writes the embedded set, imports first.
    let out = std::env::temp_dir().join(format!("example-service-fds-{}.bin", std::process::id()));
    let status = Command::new(BIN).arg("descriptor-set").arg(&out).status().unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(bytes, example_service::DESCRIPTOR_SET);
    let set = prost_types::FileDescriptorSet::decode(bytes.as_slice()).unwrap();
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    for (i, file) in set.file.iter().enumerate() {
        for dep in &file.dependency {
            let at = names.iter().position(|n| n == dep).unwrap_or_else(|| panic!("{dep} missing"));
            assert!(at < i, "{dep} after {}", file.name());
        }
    }
    for name in [
        "bookstore/v1/bookstore.proto",
        "echo/v1/echo.proto",
        "google/api/annotations.proto",
        "google/api/http.proto",
        "google/api/httpbody.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "google/protobuf/descriptor.proto",
        "google/protobuf/timestamp.proto",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    // The google.api.http options survived (prost_types drops them on decode,
    // so look at the raw bytes).
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"/v1/{name=shelves/*/books/*}:archive"));
    assert!(has(b"/api/v1/echo/{request}/get"));

    // --help and errors.
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("descriptor-set OUT_FILE"));
    for bad in [&["bogus"][..], &[], &["serve", "--listen"], &["serve", "--listen", "nope"], &["descriptor-set"]] {
        let output = Command::new(BIN).args(bad).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&output.stderr).starts_with("example-service: "));
    }

    // SIGTERM stops the server cleanly, with a client connection open
    // (the client answers the GOAWAY while we wait off the runtime).
    let server = Server::start();
    let channel = server.channel().await;
    BookstoreClient::new(channel.clone()).list_shelves(()).await.unwrap();
    let started = std::time::Instant::now();
    let status = sigterm_and_wait(server).await;
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // A client that never reacts to the GOAWAY (this runtime is blocked)
    // cannot keep the server alive past the grace period.
    let server = Server::start();
    let raw = std::net::TcpStream::connect(server.addr).unwrap();
    let status = sigterm_and_wait(server).await;
    assert!(status.success(), "{status:?}");
    drop(raw);
}

async fn sigterm_and_wait(mut server: Server) -> std::process::ExitStatus {
    let killed = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(killed.success());
    tokio::task::spawn_blocking(move || server.child.wait().unwrap()).await.unwrap()
}

/// `serve --stateful`: what is created, updated and deleted stays so, across connections.
#[tokio::test]
async fn stateful_round_trip() {
    let server = Server::start_with(&["--stateful"]);
    let mut bookstore = BookstoreClient::new(server.channel().await);
    let themes = |shelves: Vec<bs::Shelf>| shelves.into_iter().map(|s| (s.id, s.theme)).collect::<Vec<_>>();

    let seeded = bookstore.list_shelves(()).await.unwrap().into_inner().shelves;
    assert_eq!(themes(seeded), [(1, "Fiction".to_owned()), (2, "History".to_owned())]);
    let shelf = bs::Shelf { id: 0, theme: "Poetry".into() };
    let created = bookstore.create_shelf(bs::CreateShelfRequest { shelf: Some(shelf) }).await.unwrap();
    assert_eq!(version(created.metadata()), Some("1"));
    assert_eq!(created.into_inner(), bs::Shelf { id: 3, theme: "Poetry".into() });

    let book = bs::Book { title: "Leaves of Grass".into(), ..Default::default() };
    let book = bookstore.create_book(bs::CreateBookRequest { shelf: 3, book: Some(book) }).await.unwrap().into_inner();
    assert_eq!(book.name, "shelves/3/books/1");
    let update = bs::UpdateBookRequest {
        book: Some(bs::Book { name: book.name.clone(), title: "not this".into(), pages: 145, ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["pages".into()] }),
    };
    let updated = bookstore.update_book(update).await.unwrap().into_inner();
    assert_eq!((updated.title.as_str(), updated.pages), ("Leaves of Grass", 145));

    // Another connection sees the same data.
    let mut other = BookstoreClient::new(server.channel().await);
    let got = other.get_book(bs::GetBookRequest { name: "shelves/3/books/1".into() }).await.unwrap().into_inner();
    assert_eq!(got, updated);
    let listed = other.list_books(bs::ListBooksRequest { shelf: 3, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(listed, bs::ListBooksResponse { books: vec![updated], query: None });

    bookstore.delete_shelf(bs::DeleteShelfRequest { shelf: 3 }).await.unwrap();
    let err = other.get_shelf(bs::GetShelfRequest { shelf: 3 }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::NotFound, "shelf 3 not found"));
    assert_eq!(version(err.metadata()), Some("1"));
    let err = other.get_book(bs::GetBookRequest { name: "shelves/3/books/1".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Concurrent creates from many connections: every one gets its own id, none is lost.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let channel = server.channel().await;
        tasks.push(tokio::spawn(async move {
            let shelf = bs::Shelf { id: 0, theme: format!("t{i}") };
            BookstoreClient::new(channel).create_shelf(bs::CreateShelfRequest { shelf: Some(shelf) }).await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().into_inner().id);
    }
    ids.sort_unstable();
    assert_eq!(ids, (4..24).collect::<Vec<i64>>());
    assert_eq!(bookstore.list_shelves(()).await.unwrap().into_inner().shelves.len(), 22);

    // Bounded: past the limit the store says so instead of growing.
    for _ in 22..example_service::store::MAX_SHELVES {
        bookstore.create_shelf(bs::CreateShelfRequest { shelf: None }).await.unwrap();
    }
    let err = bookstore.create_shelf(bs::CreateShelfRequest { shelf: None }).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
}
