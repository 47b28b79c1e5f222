//! Tests of the parent module.

use super::*;

#[test]
fn fingerprint_is_colon_separated_upper_case_sha256() {
    let fp = fingerprint(b"abc");
    assert_eq!(
        fp,
        "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
    );
}

#[test]
fn default_path_prefers_an_absolute_xdg_config_home() {
    let home = Some(PathBuf::from("/home/u"));
    assert_eq!(
        default_known_servers_from(Some("/x/cfg".into()), home.clone()),
        Some(PathBuf::from("/x/cfg/natter/known_servers"))
    );
    assert_eq!(
        default_known_servers_from(Some("relative".into()), home.clone()),
        Some(PathBuf::from("/home/u/.config/natter/known_servers"))
    );
    assert_eq!(
        default_known_servers_from(None, home),
        Some(PathBuf::from("/home/u/.config/natter/known_servers"))
    );
    assert_eq!(default_known_servers_from(None, None), None);
}

#[test]
fn parses_pins_comments_and_line_numbers() {
    let known = KnownServers::parse(
        "# comment\n\nhost:1 ab:cd\n  other:2   EF:01  trailing\nbroken\nhost:1 11:22\n",
    );
    let host: Vec<_> = known.lookup("host:1").collect();
    assert_eq!(host.len(), 2);
    assert_eq!((host[0].line, host[0].fingerprint.as_str()), (3, "AB:CD"));
    assert_eq!((host[1].line, host[1].fingerprint.as_str()), (6, "11:22"));
    assert_eq!(known.lookup("other:2").count(), 1);
    assert_eq!(known.lookup("host:2").count(), 0);
}

#[test]
fn append_creates_private_file_and_directory_and_keeps_lines_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cfg/natter/known_servers");
    KnownServers::append(&path, "a:1", "AA:BB").expect("first");
    // A hand-edited file without a final newline.
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("b:2 CC:DD");
    std::fs::write(&path, &text).expect("write");
    KnownServers::append(&path, "c:3", "EE:FF").expect("second");
    let known = KnownServers::load(&path).expect("load");
    let servers: Vec<_> = known
        .entries
        .iter()
        .map(|e| (e.server.as_str(), e.fingerprint.as_str()))
        .collect();
    assert_eq!(
        servers,
        [("a:1", "AA:BB"), ("b:2", "CC:DD"), ("c:3", "EE:FF")]
    );
    assert!(
        std::fs::read_to_string(&path)
            .expect("read")
            .ends_with("c:3 EE:FF\n")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
    }
}

#[test]
fn missing_file_has_no_pins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let known = KnownServers::load(&dir.path().join("nope")).expect("load");
    assert!(known.entries.is_empty());
}

#[test]
fn server_names_from_host_port() {
    assert_eq!(
        server_name("localhost:9999").expect("dns").to_str(),
        "localhost"
    );
    assert!(matches!(
        server_name("127.0.0.1:9999").expect("ip"),
        ServerName::IpAddress(_)
    ));
    assert!(matches!(
        server_name("[::1]:9999").expect("ip6"),
        ServerName::IpAddress(_)
    ));
    assert!(server_name("bad host:1").is_err());
}

#[test]
fn changed_message_names_both_fingerprints_the_file_and_the_line() {
    let e = TrustError::Changed {
        server: "h:1".into(),
        expected: "AA:AA".into(),
        presented: "BB:BB".into(),
        file: PathBuf::from("/k/known_servers"),
        lines: vec![4],
    };
    let text = e.to_string();
    for needle in [
        "WARNING",
        "h:1",
        "AA:AA",
        "BB:BB",
        "remove line 4 of /k/known_servers and connect again",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn notice_and_question_name_server_and_fingerprint() {
    assert_eq!(
        pinned_notice("h:1", "AA:BB", Path::new("/k")),
        "pinned new server h:1 with fingerprint AA:BB (in /k)"
    );
    let q = new_server_question("h:1", "AA:BB");
    assert!(q.contains("h:1") && q.contains("AA:BB"), "{q}");
    assert!(
        q.ends_with("Trust this server and remember it? [y/N] "),
        "{q}"
    );
}
