"""Issue 15 without a browser: the share link's address, the confusion matrix's axes, the
charts' text alternatives and the last run's message (the browser side, with the
offline favicon, is tests/browser/test_devices_browser.py)."""

from urllib.parse import urlsplit

import numpy as np
import pytest
from streamlit import config as st_config

from mlp_lab import address, figures
from mlp_lab.session import last_run_notice
from mlp_lab.text import shown
from test_app import assert_clean
from test_teaching_app import new_app


@pytest.fixture
def server_address():
    """Set Streamlit's browser.serverAddress for one test (AppTest runs in this process)."""
    before = st_config.get_option("browser.serverAddress")

    def set_to(value):
        st_config.set_option("browser.serverAddress", value)

    yield set_to
    st_config.set_option("browser.serverAddress", before)


def share_link(at) -> str:
    codes = [c.value for c in at.code if "?" in c.value and "model=" in c.value]
    assert len(codes) == 1, [c.value for c in at.code]
    return codes[0]


def test_the_share_link_uses_the_configured_server_address(server_address):
    server_address("mlp-lab.school.example")
    at = new_app()
    at.switch_page("pages/lesson.py").run()
    assert_clean(at)
    link = urlsplit(share_link(at))
    assert link.hostname == "mlp-lab.school.example"
    assert "model=dense" in link.query
    assert any("browser.serverAddress = mlp-lab.school.example" in shown(c.value) for c in at.caption)


def test_the_share_link_never_hands_out_localhost(server_address):
    """Streamlit's default serverAddress is "localhost" (= not set) and AppTest's page has
    no address: the link must be this machine's network address, or the page says why it
    has none. Never localhost."""
    server_address("localhost")
    at = new_app()
    at.switch_page("pages/lesson.py").run()
    assert_clean(at)
    host = urlsplit(share_link(at)).hostname
    ip = address.network_ip()
    if ip is None:
        assert any("no network address" in shown(w.value) for w in at.warning)
    else:
        assert host == ip and not address.is_local(host)
        assert any("This computer's network address" in shown(c.value) for c in at.caption)


def test_student_address_from_localhost_page_is_the_network_ip():
    found = address.student_address("http://localhost:8501/lesson", None, find_ip=lambda: "192.168.1.20")
    assert found.url == "http://192.168.1.20:8501/lesson" and found.reachable
    same = address.student_address("http://10.0.0.5:8501/", None, find_ip=lambda: "192.168.1.20")
    assert same.url == "http://10.0.0.5:8501/"  # opened from the network already


def test_the_confusion_matrix_axes_are_the_ten_digits():
    cm = np.diag(np.full(10, 100))
    cm[4, 9] = 7
    fig = figures.confusion_figure(cm)
    assert tuple(fig.layout.xaxis.range) == (-0.5, 9.5)
    assert sorted(fig.layout.yaxis.range) == [-0.5, 9.5]
    assert fig.layout.xaxis.constrain == "domain" and fig.layout.yaxis.constrain == "domain"
    assert figures.confusion_summary(cm).endswith("4 read as 9 (7 times).")


def test_chart_summaries_say_what_the_chart_shows():
    p = np.array([0.01, 0.9, 0.05, 0.04, 0, 0, 0, 0, 0, 0])
    assert figures.probability_summary(p).endswith("1 at 90%, next 2 at 5%.")
    assert figures.samples_summary([1, 2, 3], [1, 2, 5]) == (
        "3 test images with the network's answers: 2 right, 1 wrong (it answered 5 for a 3).")
    loss = figures.loss_figure(np.arange(1, 101), np.linspace(2.0, 0.5, 100))
    text = figures.figure_summary(loss)
    assert text.startswith("Line chart: Loss") and "ends at" in text
    heat = figures.weight_heatmap(np.zeros((3, 4), dtype=np.float32), "w9")
    assert figures.figure_summary(heat).startswith("Heatmap: w9")


def test_last_run_notice_belongs_to_its_model():
    assert last_run_notice(("success", "Finished", 3), 3) == ("success", "Finished")
    assert last_run_notice(("success", "Finished", 3), 4) is None  # a new model since
    assert last_run_notice(None, 3) is None
    assert last_run_notice(("success", "Finished"), 3) is None  # an old session's two-part notice

