//! `bench-backend`: the gRPC server behind Envoy in `make bench`. Every call
//! costs next to nothing (POSTs echo their message, GETs answer one built at
//! start-up), so the measured time is the proxy's.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use tonic::{Request, Response, Status};

// Generated code: the google.api types come along with bench.proto but are not used here.
#[allow(dead_code)]
mod protos {
    include!(concat!(env!("OUT_DIR"), "/protos.rs"));
}

use protos::bench::v1::{
    bench_server::{Bench, BenchServer},
    Address, Catalog, LineItem, Listing, Money, Order, OrderRequest, Small, SmallRequest,
};

/// The embedded FileDescriptorSet (imports and HTTP rules included).
const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

const USAGE: &str = "\
bench-backend: the gRPC backend of `make bench` (bench.v1.Bench)

USAGE:
    bench-backend serve --listen IP:PORT   serve plaintext HTTP/2 gRPC (port 0: a free one);
                                           prints `listening on <addr>`; runs until killed
    bench-backend descriptor-set OUT_FILE  write the FileDescriptorSet of bench.proto
";

struct Service {
    order: Order,
}

#[tonic::async_trait]
impl Bench for Service {
    async fn get_small(&self, request: Request<SmallRequest>) -> Result<Response<Small>, Status> {
        let r = request.into_inner();
        Ok(Response::new(Small { id: r.id, name: r.name, count: r.count, active: r.active }))
    }

    async fn post_small(&self, request: Request<Small>) -> Result<Response<Small>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn get_order(&self, request: Request<OrderRequest>) -> Result<Response<Order>, Status> {
        let r = request.into_inner();
        let mut order = self.order.clone();
        order.id = r.id;
        Ok(Response::new(order))
    }

    async fn post_order(&self, request: Request<Order>) -> Result<Response<Order>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn post_listing(&self, request: Request<Listing>) -> Result<Response<Listing>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn post_catalog(&self, request: Request<Catalog>) -> Result<Response<Catalog>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// The order GET answers: the same content as bench/payloads/order.json.
fn sample_order() -> Order {
    let money = |units: i64, nanos: i32| Some(Money { currency_code: "EUR".into(), units, nanos });
    let address = |street: &str| {
        Some(Address {
            lines: vec![street.into(), "Building 4, floor 2".into()],
            city: "Lyon".into(),
            postal_code: "69003".into(),
            region_code: "FR".into(),
        })
    };
    let item = |sku: &str, title: &str, quantity: i32, units: i64| LineItem {
        sku: sku.into(),
        title: title.into(),
        quantity,
        unit_price: money(units, 990_000_000),
        tags: vec!["catalogue".into(), "in-stock".into()],
    };
    Order {
        id: "order-000123".into(),
        customer_id: "customer-4567".into(),
        status: 2,
        create_time: Some(prost_types::Timestamp { seconds: 1_767_225_600, nanos: 0 }),
        update_time: Some(prost_types::Timestamp { seconds: 1_767_229_200, nanos: 500_000_000 }),
        shipping_address: address("12 rue de la République"),
        billing_address: address("8 place Bellecour"),
        items: vec![
            item("SKU-0001", "The Rust Programming Language", 1, 39),
            item("SKU-0002", "Protocol Buffers in Practice", 2, 24),
            item("SKU-0003", "Envoy Proxy Handbook", 1, 45),
            item("SKU-0004", "WebAssembly Internals", 3, 31),
        ],
        total: money(219, 950_000_000),
        labels: [("channel", "web"), ("campaign", "winter-sale"), ("warehouse", "lyon-2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        discount_rate: 0.15,
        gift: true,
        note: "Leave the parcel with the concierge if nobody answers.".into(),
    }
}

fn serve(listen: SocketAddr) -> Result<(), String> {
    // One thread: the backend must leave the cores to Envoy and the load generator.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all() // timers too: grpc-timeout (sent by the filter's own calls) needs them
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!("listening on {local}");
        let _ = std::io::stdout().flush();
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        // One service, served without tonic's router (the `router` feature is not built).
        tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(
                BenchServer::new(Service { order: sample_order() }),
                incoming,
                std::future::pending(),
            )
            .await
            .map_err(|e| format!("server failed: {e}"))
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve", "--listen", addr] => match addr.parse() {
            Ok(addr) => serve(addr),
            Err(e) => Err(format!("--listen `{addr}` is not an IP:PORT address: {e}")),
        },
        ["descriptor-set", out] => std::fs::write(out, DESCRIPTOR_SET).map_err(|e| format!("cannot write {out}: {e}")),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-backend: {e}");
            ExitCode::FAILURE
        }
    }
}
