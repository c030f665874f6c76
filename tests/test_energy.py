"""Energy figures: measured where RAPL is readable, otherwise estimated from CPU time, always labelled."""
import socket

import pytest

from core.evaluation import energy


def _burn(n: int) -> int:
    return sum(i * i for i in range(n))


def test_meter_estimates_from_cpu_time_and_says_so(monkeypatch):
    monkeypatch.setattr(energy, "RAPL", energy.Path("/nonexistent"))
    monkeypatch.setenv("LAB_CPU_WATTS_PER_CORE", "12")
    with energy.meter() as small:
        _burn(200_000)
    with energy.meter() as big:
        _burn(2_000_000)
    a, b = small["energy"], big["energy"]
    assert a.method.startswith("estimated") and "12 W" in a.method
    assert a.joules == pytest.approx(a.cpu_seconds * 12) and b.joules == pytest.approx(b.cpu_seconds * 12)
    assert b.joules > 3 * a.joules  # ten times the work costs clearly more energy


def test_carbon_uses_the_chosen_region_without_network(monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("energy code reached for the network")
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("LAB_CARBON_REGION", "FR")
    fr = energy.estimate(3600, 3600).to_dict()  # 1 CPU-hour at 10 W = 0.01 kWh
    monkeypatch.setenv("LAB_CARBON_REGION", "PL")
    pl = energy.estimate(3600, 3600).to_dict()
    assert fr["kwh"] == pytest.approx(0.01) and fr["co2e_g"] == pytest.approx(0.01 * 55)
    assert pl["co2e_g"] > 10 * fr["co2e_g"]
    monkeypatch.setenv("LAB_CARBON_REGION", "nowhere")
    assert energy.region() == "WORLD"


def test_rapl_counters_are_used_when_readable(tmp_path, monkeypatch):
    f = tmp_path / "intel-rapl:0" / "energy_uj"
    f.parent.mkdir()
    f.write_text("1000000")
    monkeypatch.setattr(energy, "RAPL", tmp_path)
    with energy.meter() as m:
        f.write_text("6000000")  # 5 J later
    assert m["energy"].method.startswith("measured") and m["energy"].joules == pytest.approx(5.0)


def test_total_adds_stages():
    t = energy.total([energy.estimate(1.0), energy.estimate(2.0)])
    assert t.cpu_seconds == pytest.approx(3.0) and t.joules == pytest.approx(30.0)


def test_region_and_power_come_from_lab_settings_unless_the_environment_says(monkeypatch, tmp_path):
    from core.store import settings
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.delenv("LAB_CARBON_REGION", raising=False)
    monkeypatch.delenv("LAB_CPU_WATTS_PER_CORE", raising=False)
    assert energy.region() == "WORLD" and energy.watts_per_core() == 10
    settings.save(carbon_region="se", cpu_watts_per_core=15)
    assert energy.region() == "SE" and energy.estimate(2.0).joules == pytest.approx(30.0)
    assert energy.co2e_g(1.0) == pytest.approx(40) and energy.co2e_g(1.0, "PL") == pytest.approx(660)
    monkeypatch.setenv("LAB_CARBON_REGION", "NO")
    assert energy.region() == "NO" and settings.overridden("carbon_region")
    (tmp_path / "settings.json").write_text("{not json")
    monkeypatch.delenv("LAB_CARBON_REGION")
    assert energy.region() == "WORLD"                       # a broken settings file falls back to the defaults
    with pytest.raises(ValueError, match="unknown settings"):
        settings.save(colour="green")


def test_per_1000_scales_by_the_number_of_predictions():
    e = energy.estimate(0.5)                                 # 5 J for 250 images
    k = energy.per_1000(e, 250)
    assert k["joules"] == pytest.approx(20.0) and k["images"] == 250 and k["method"] == e.method


def test_settings_command_sets_the_region_and_power(monkeypatch, tmp_path, capsys):
    import json
    from core.cli.main import main
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.delenv("LAB_CARBON_REGION", raising=False)
    monkeypatch.delenv("LAB_CPU_WATTS_PER_CORE", raising=False)
    assert main(["settings", "--carbon-region", "fr", "--cpu-watts-per-core", "7.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["carbon_region"] == "FR" and out["carbon_intensity_g_per_kwh"] == 55 and out["cpu_watts_per_core"] == 7.5
    assert energy.region() == "FR" and energy.watts_per_core() == 7.5
    assert main(["settings", "--carbon-region", "Atlantis"]) == 2
    assert "unknown carbon region" in capsys.readouterr().err and energy.region() == "FR"


def test_live_video_settings_and_ice_servers(monkeypatch, tmp_path, capsys):
    import json

    from core.cli.main import main
    from core.errors import LabError
    from core.store import settings
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    for var in ("LAB_LIVE_VIDEO", "LAB_ICE_SERVERS"):
        monkeypatch.delenv(var, raising=False)
    assert settings.live_video() and settings.ice_servers() == []          # default: on, no server contacted
    assert main(["settings", "--live-video", "off", "--ice-servers", "stun:stun.example.org:3478, "
                 "turn:turn.example.org:3478", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["live_video"] is False and out["ice_servers"] == [{"urls": ["stun:stun.example.org:3478"]},
                                                                 {"urls": ["turn:turn.example.org:3478"]}]
    turn = '[{"urls": "turns:turn.example.org:443", "username": "lab", "credential": "s3cret"}]'
    monkeypatch.setenv("LAB_ICE_SERVERS", turn)                             # the environment wins
    monkeypatch.setenv("LAB_LIVE_VIDEO", "on")
    assert settings.live_video() and settings.ice_servers() == [
        {"urls": ["turns:turn.example.org:443"], "username": "lab", "credential": "s3cret"}]
    monkeypatch.setenv("LAB_ICE_SERVERS", "http://example.org")
    with pytest.raises(LabError, match="not a STUN/TURN server"):
        settings.ice_servers()
    monkeypatch.delenv("LAB_ICE_SERVERS")
    assert main(["settings", "--ice-servers", "[{broken"]) == 2                # refused, nothing saved
    assert "not valid JSON" in capsys.readouterr().err and len(settings.ice_servers()) == 2
    assert main(["settings", "--ice-servers", ""]) == 0 and settings.ice_servers() == []
