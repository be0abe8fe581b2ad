//! `govledger keys` and `govledger testnet init`, through the binary.

mod common;

use common::{code, json, run, text};
use ledger::genesis::Genesis;
use ledger::tx::Role;
use serde::Deserialize;
use std::path::Path;

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn keys_new_is_private_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("clerk.key");
    let ps = p.to_str().unwrap();
    let o = run(&["keys", "new", "--out", ps, "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let created = json(&o);
    #[cfg(unix)]
    assert_eq!(mode(&p), 0o600);
    let key = ledger::keyfile::read(&p).unwrap();
    assert_eq!(
        created["public_key"].as_str().unwrap(),
        key.public_key().to_hex()
    );
    assert!(created["peer_id"].as_str().unwrap().starts_with("12D3KooW"));

    let before = std::fs::read(&p).unwrap();
    let o = run(&["keys", "new", "--out", ps]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(text(&o).contains("refusing to overwrite"), "{}", text(&o));
    assert_eq!(std::fs::read(&p).unwrap(), before);

    let o = run(&["keys", "show", ps, "--json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["public_key"], created["public_key"]);
    assert_eq!(json(&o)["peer_id"], created["peer_id"]);
    let o = run(&["keys", "show", ps]);
    assert!(text(&o).contains(&key.public_key().to_hex()));
}

#[test]
fn keys_show_gives_the_libp2p_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("node.key");
    ledger::keyfile::write_new(&p, &ledger::SecretKey::from_seed(&[7; 32])).unwrap();
    let o = run(&["keys", "show", p.to_str().unwrap(), "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    // Computed with libp2p-identity 0.3.1 for this seed.
    assert_eq!(
        json(&o)["peer_id"],
        "12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7"
    );
}

#[test]
fn keys_show_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.key");
    std::fs::write(&p, "{\"type\": \"rsa\"}").unwrap();
    let o = run(&["keys", "show", p.to_str().unwrap()]);
    assert_eq!(code(&o), 6);
    assert!(
        text(&o).contains("not a govledger key file"),
        "{}",
        text(&o)
    );
    let o = run(&["keys", "show", dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(code(&o), 6);
}

/// The node's config fields (node/src/config.rs), strictly: an unknown or misspelt field
/// fails to parse, as it would in the node.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeConfig {
    data_dir: String,
    genesis: String,
    node_key: String,
    p2p_listen: String,
    bootstrap: Vec<String>,
    api_listen: std::net::SocketAddr,
    log_format: String,
    log_level: String,
}

#[test]
fn testnet_init_writes_a_consistent_network() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let o = run(&[
        "testnet",
        "init",
        "--validators",
        "4",
        "--out",
        out.to_str().unwrap(),
        "--chain-id",
        "city-testnet",
        "--base-port",
        "36656",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let summary = text(&o);
    assert!(summary.contains("http://127.0.0.1:8080"), "{summary}");
    assert!(summary.contains("govledger-node --config"), "{summary}");
    assert!(out.join("README.txt").is_file());

    let g =
        Genesis::from_json(&std::fs::read_to_string(out.join("genesis.json")).unwrap()).unwrap();
    assert_eq!(g.chain_id, "city-testnet");
    assert_eq!(g.departments.len(), 4);
    assert_eq!(g.validators.len(), 4);
    assert_eq!(g.members.len(), 4);
    assert!(summary.contains(&g.hash().to_hex()));
    for i in 1..=4u16 {
        let dept = format!("dept-{i}");
        let d = g.departments.iter().find(|d| d.id == dept).unwrap();
        assert!(!d.name.is_empty() && d.name != dept);

        let node_dir = out.join(format!("node-{i}"));
        let node_key = ledger::keyfile::read(&node_dir.join("node.key")).unwrap();
        #[cfg(unix)]
        assert_eq!(mode(&node_dir.join("node.key")), 0o600);
        let v = g
            .validators
            .iter()
            .find(|v| v.public_key == node_key.public_key())
            .expect("node key is a validator");
        assert_eq!(v.department, dept);
        assert_eq!(v.power, 1);
        assert_eq!(v.address, format!("/ip4/127.0.0.1/tcp/{}", 36656 + i - 1));

        let client =
            ledger::keyfile::read(&out.join("clients").join(format!("{dept}.key"))).unwrap();
        let m = g
            .members
            .iter()
            .find(|m| m.key == client.public_key())
            .expect("client key is a member");
        assert_eq!(m.department, dept);
        for r in [
            Role::Approvals,
            Role::LandRegistry,
            Role::Catalog,
            Role::DataAccess,
            Role::Anchor,
            Role::Governance,
        ] {
            assert!(m.roles.contains(r), "{dept} lacks {r:?}");
        }

        let cfg_path = node_dir.join("config.toml");
        let cfg: NodeConfig = toml::from_str(&std::fs::read_to_string(&cfg_path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", cfg_path.display()));
        assert_eq!(cfg.data_dir, "data");
        assert!(node_dir.join(&cfg.genesis).is_file(), "{}", cfg.genesis);
        assert_eq!(node_dir.join(&cfg.node_key), node_dir.join("node.key"));
        assert_eq!(
            cfg.p2p_listen,
            format!("/ip4/127.0.0.1/tcp/{}", 36656 + i - 1)
        );
        assert_eq!(cfg.bootstrap.len(), 3);
        assert!(!cfg.bootstrap.contains(&v.address));
        for b in &cfg.bootstrap {
            assert!(g.validators.iter().any(|v| &v.address == b), "{b}");
        }
        assert_eq!(
            cfg.api_listen.to_string(),
            format!("127.0.0.1:{}", 8080 + i - 1)
        );
        assert_eq!(cfg.log_format, "human");
        assert_eq!(cfg.log_level, "info");
    }

    // Never over an existing testnet.
    let again = run(&[
        "testnet",
        "init",
        "--validators",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&again), 6, "{}", text(&again));
}

#[test]
fn testnet_init_on_a_lan_address_listens_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lan");
    let o = run(&[
        "testnet",
        "init",
        "--validators",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--host",
        "10.1.2.3",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(json(&o)["nodes"][0]["api_url"], "http://10.1.2.3:8080");
    let cfg: NodeConfig =
        toml::from_str(&std::fs::read_to_string(out.join("node-1/config.toml")).unwrap()).unwrap();
    assert_eq!(cfg.p2p_listen, "/ip4/0.0.0.0/tcp/26656");
    assert!(cfg.bootstrap.is_empty());
    let g =
        Genesis::from_json(&std::fs::read_to_string(out.join("genesis.json")).unwrap()).unwrap();
    assert_eq!(g.validators[0].address, "/ip4/10.1.2.3/tcp/26656");
}

#[test]
fn testnet_init_refuses_bad_counts() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&[
        "testnet",
        "init",
        "--validators",
        "0",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(!dir.path().join("x").exists());
}
