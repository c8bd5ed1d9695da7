"""The address handed out to students is one their devices can open."""

from mlp_lab.address import is_local, network_ip, student_address


def test_local_names_and_addresses():
    for host in ("localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "0.0.0.0", "app.localhost"):
        assert is_local(host), host
    for host in ("192.168.1.20", "10.0.0.5", "class.school.example", "fe80::1"):
        assert not is_local(host), host


def test_localhost_becomes_the_network_address_with_the_same_port_and_path():
    found = student_address("http://localhost:8501/train?lr=0.1", find_ip=lambda: "192.168.1.20")
    assert found.url == "http://192.168.1.20:8501/train"
    assert found.reachable and "localhost" in found.why


def test_an_address_students_can_already_open_is_kept():
    found = student_address("http://192.168.1.20:8501/?lesson=adam", find_ip=lambda: "10.0.0.9")
    assert found.url == "http://192.168.1.20:8501/"


def test_the_configured_server_address_wins():
    found = student_address("http://localhost:8501/", server_address="mlp.school.example",
                            find_ip=lambda: "10.0.0.9")
    assert found.url == "http://mlp.school.example:8501/"
    assert "browser.serverAddress" in found.why
    # a configured localhost is no better than none
    assert student_address("http://127.0.0.1:8501/", server_address="localhost",
                           find_ip=lambda: "10.0.0.9").url == "http://10.0.0.9:8501/"


def test_no_network_says_so():
    found = student_address("http://localhost:8501/", find_ip=lambda: None)
    assert not found.reachable and found.url == "http://localhost:8501/"
    assert "no network address" in found.why


def test_this_machine_network_ip_is_not_loopback():
    ip = network_ip()
    assert ip is None or not is_local(ip)
