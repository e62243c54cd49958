"""The day-to-day equilibrium (twin.equilibrium): convergence, Braess, determinism, snapshots, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from city_models import City, Zones
from city_models.network import make_network
from scenarios import ScenarioError, load_scenario
from twin.equilibrium import ITERATION_VARS, RouteKnowledge, equilibrate, write_equilibrium
from twin.model import Twin

PLACEHOLDER = {"synthetic": {"blocks_x": 2, "blocks_y": 2, "river": False, "ring_road": False, "zone_blocks": 1}}


def braess_city(shortcut: bool) -> City:
    """O (0) to D (4) over an upper route O-P-A-D and a lower one O-B-D, 150 s each at free flow,
    each with a 1,200 veh/h bottleneck (P-A, B-D) whose queue is stored on the link before it
    (O-P, O-B); ``shortcut`` adds A-B (10 s), making O-P-A-B-D 110 s at free flow."""
    x = np.array([0.0, 300.0, 450.0, 450.0, 1950.0])
    y = np.array([0.0, 400.0, 500.0, -500.0, 0.0])
    links = [
        (0, 1, 600.0, 2.0, 4000.0),
        (1, 2, 150.0, 1.0, 1200.0),
        (2, 4, 1500.0, 3.0, 6000.0),
        (0, 3, 1500.0, 3.0, 6000.0),
        (3, 4, 750.0, 1.0, 1200.0),
    ]
    if shortcut:
        links.append((2, 3, 150.0, 2.0, 4000.0))
    src, dst, length, lanes, cap = (list(c) for c in zip(*links, strict=False))
    net = make_network(
        x=x,
        y=y,
        src=src,
        dst=dst,
        length_m=length,
        lanes=lanes,
        free_speed_mps=15.0,
        capacity_vph=cap,
        node_osmid=np.arange(5),
        link_osmid=np.arange(len(src)),
    )
    zones = Zones(
        name=("Z",),
        residents=np.array([1]),
        jobs=np.array([1]),
        x=np.array([900.0]),
        y=np.array([0.0]),
        node_zone=np.zeros(5, np.int32),
    )
    return City(name="braess", network=net, zones=zones)


def od_scenario(tmp_path, *, rate_vph=1800.0, hours=1.0, **equilibrium):
    """Trips from O to D at a steady rate for ``hours``; near-deterministic route choice."""
    dep = np.arange(int(rate_vph * hours)) * 3600.0 / rate_vph
    path = tmp_path / "trips.csv"
    path.write_text("trip_id,origin,destination,depart_s\n" + "".join(f"{i},0,4,{d:.3f}\n" for i, d in enumerate(dep)))
    return load_scenario(
        {
            "name": "od",
            "seed": 1,
            "time": {"duration": f"{hours + 0.5}h", "step": "1s"},
            "city": PLACEHOLDER,
            "demand": {"trips": str(path)},
            "traffic": {
                "reroute_interval": "5min",
                "route_tolerance": 0,
                "route_dispersion": 5,
                "equilibrium": equilibrium,
            },
            "outputs": {"interval": "5min"},
        }
    )


def test_gap_falls_below_one_percent_and_is_reported_per_iteration(tmp_path):
    sc = od_scenario(tmp_path, rate_vph=2200.0, iterations=15, gap_target=0.01)
    eq = equilibrate(sc, city=braess_city(False))
    gaps = [h["relative_gap"] for h in eq.history]
    assert gaps[0] > 0.01  # day 1, routing on the day's own travel times, is not there yet
    assert eq.converged and gaps[-1] < 0.01 and 1 < len(gaps) <= 15
    assert all(np.isfinite(g) for g in gaps)
    # 2,200 veh/h against two 1,200 veh/h bottlenecks: a low gap needs a near-even split
    inflow = eq.twin.results().link_inflow.sum("time").values
    assert inflow[0] > 0.4 * 2200 and inflow[3] > 0.4 * 2200
    ds = eq.dataset()
    assert ds.sizes["iteration"] == len(gaps)
    np.testing.assert_allclose(ds.relative_gap.values, gaps)
    for name in ITERATION_VARS:
        assert name in ds and ds[name].attrs["units"]
    out = write_equilibrium(eq, tmp_path / "run")
    with xr.open_dataset(out / "equilibrium.nc", engine="h5netcdf") as saved:
        np.testing.assert_allclose(saved.relative_gap.values, gaps)
        assert saved.attrs["converged"] == 1
    assert (out / "results.nc").is_file() and (out / "summary.json").is_file()


def test_gap_target_zero_runs_every_iteration_and_learns(tmp_path):
    sc = od_scenario(tmp_path, iterations=3, gap_target=0.0)
    eq = equilibrate(sc, city=braess_city(False))
    assert eq.iterations == 3
    assert [h["switch_share"] for h in eq.history] == pytest.approx([1.0, 1 / 2, 1 / 3])
    assert eq.twin.route_knowledge is not None and eq.twin.route_knowledge.day == 3
    c = equilibrate(sc, city=braess_city(False), method="constant", switch_share=0.25)
    assert [h["switch_share"] for h in c.history] == pytest.approx([1.0, 0.25, 0.25])


def test_braess_paradox_at_equilibrium(tmp_path):
    sc = od_scenario(tmp_path, iterations=20, gap_target=0.0)
    without = equilibrate(sc, city=braess_city(False))
    with_link = equilibrate(sc, city=braess_city(True))
    t0 = without.twin.results().trip_travel_time_s.values
    t1 = with_link.twin.results().trip_travel_time_s.values
    assert np.isfinite(t0).all() and np.isfinite(t1).all()
    # without the link: both routes at about free flow (150 s); the link makes the trip slower
    # (static user equilibrium: 190 s for everyone, 600 veh/h on each of the three routes)
    assert abs(np.mean(t0) - 150.0) < 10.0
    assert with_link.final_gap < 0.1 and without.final_gap < 0.01
    assert np.mean(t1) > 1.15 * np.mean(t0)
    assert np.median(t1) > np.mean(t0)
    # the shortcut is used at equilibrium (that is what makes everyone slower)
    assert with_link.twin.results().link_inflow.sum("time").values[5] > 100


def test_same_seed_same_iterations(tmp_path):
    sc = od_scenario(tmp_path, rate_vph=2000.0, iterations=4, gap_target=0.0)
    a = equilibrate(sc, city=braess_city(True))
    b = equilibrate(sc, city=braess_city(True))
    for ha, hb in zip(a.history, b.history, strict=True):
        for key in ("relative_gap", "mean_travel_time_s", "vehicle_hours", "expectation_error"):
            assert ha[key] == hb[key] or (np.isnan(ha[key]) and np.isnan(hb[key]))
    np.testing.assert_array_equal(a.knowledge, b.knowledge)


def test_snapshot_of_an_equilibrated_twin_keeps_the_knowledge(tmp_path):
    sc = od_scenario(tmp_path, rate_vph=2000.0, iterations=3, gap_target=0.0)
    city = braess_city(True)
    eq = equilibrate(sc, city=city)
    tw = Twin(sc, city=city, route_knowledge=eq.next_knowledge())
    tw.run_until(1800.0)
    path = tw.snapshot(tmp_path / "day.snap")
    back = Twin.restore(path)
    assert isinstance(back.route_knowledge, RouteKnowledge)
    np.testing.assert_array_equal(back.route_knowledge.link_time_s, eq.knowledge)
    assert back.route_knowledge.next_s == tw.route_knowledge.next_s
    tw.run()
    back.run()
    np.testing.assert_array_equal(tw.traffic.veh.arrive, back.traffic.veh.arrive)
    # routing follows the knowledge: other knowledge, other day
    other = Twin(sc, city=city, route_knowledge=RouteKnowledge(np.roll(eq.knowledge, 3, axis=1), bin_s=300.0))
    other.run()
    assert not np.array_equal(other.traffic.veh.arrive, tw.traffic.veh.arrive)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("iterations", 0, "at least 1"),
        ("iterations", 1.5, ""),
        ("switch_share", 0, "greater than 0"),
        ("switch_share", 1.5, "at most 1"),
        ("method", "gradient", "'msa' or 'constant'"),
        ("gap_target", -0.1, ""),
    ],
)
def test_bad_equilibrium_settings_name_the_field(field, value, words):
    with pytest.raises(ScenarioError) as exc:
        load_scenario({"city": PLACEHOLDER, "traffic": {"equilibrium": {field: value}}})
    text = str(exc.value)
    assert f"traffic.equilibrium.{field}" in text and words in text


def test_bad_overrides_name_the_setting(tmp_path):
    from basics.errors import InputError

    sc = od_scenario(tmp_path)
    with pytest.raises(InputError, match=r"traffic\.equilibrium\.iterations"):
        equilibrate(sc, city=braess_city(False), iterations=0)
    with pytest.raises(InputError, match=r"traffic\.equilibrium\.switch_share"):
        equilibrate(sc, city=braess_city(False), switch_share=2.0)
    with pytest.raises(InputError, match=r"traffic\.equilibrium\.method"):
        equilibrate(sc, city=braess_city(False), method="fast")


def test_cli_equilibrate_writes_the_run_folder(tmp_path, capsys):
    from twin.cli import main

    sc = tmp_path / "small.yaml"
    sc.write_text(
        "name: small\nseed: 3\ntime: {start: '07:00', duration: 1h}\n"
        "city: {synthetic: {blocks_x: 4, blocks_y: 4, bridges: 1, zone_blocks: 2}}\n"
        "demand: {gravity: {total_trips: 1500}}\n"
        "traffic: {equilibrium: {iterations: 2, gap_target: 0}}\n"
    )
    assert main(["equilibrate", str(sc), "--out", str(tmp_path / "eq"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "day-to-day iterations" in out and "relative gap" in out.lower()
    with xr.open_dataset(tmp_path / "eq" / "equilibrium.nc", engine="h5netcdf") as ds:
        assert ds.sizes["iteration"] == 2
    assert main(["equilibrate", str(sc), "--iterations", "0"]) == 2
    assert "--iterations" in capsys.readouterr().err


def test_report_draws_the_convergence(tmp_path):
    from viz.report import write_report

    sc = od_scenario(tmp_path, iterations=3, gap_target=0.0)
    eq = equilibrate(sc, city=braess_city(False))
    run = write_equilibrium(eq, tmp_path / "run")
    html, pngs = write_report(run)
    text = html.read_text()
    assert "Convergence to equilibrium" in text and "day 3" in text
    assert any(p.name.endswith("-convergence.png") for p in pngs)
    (run / "equilibrium.nc").unlink()
    html, pngs = write_report(run)
    assert "Convergence to equilibrium" not in html.read_text()


# ------------------------------------------------------------------ departure times (population agents)

#: a small city whose residents all want to leave for work at about 07:30: one bridge, a sharp peak
PEAK = {
    "name": "peak",
    "seed": 5,
    "time": {"start": "06:30", "duration": "3h", "step": "2s"},
    "city": {
        "synthetic": {
            "blocks_x": 6,
            "blocks_y": 6,
            "bridges": 1,
            "zone_blocks": 2,
            "arterial_every": 3,
            "residents": 40000,
            "jobs": 28000,
        }
    },
    "outputs": {"interval": "10min"},
    "population": {
        "enabled": True,
        "plans": {
            "work": {
                "depart": "07:30",
                "depart_sd": "10min",
                "duration": "8h",
                "duration_sd": "1h",
                "min_duration": "1h",
                "value": 80,
            }
        },
        "choice": {"shifts": ["0s"]},
    },  # no within-day shifts: departures move only by learning
    "traffic": {"equilibrium": {"iterations": 12, "gap_target": 0}},
}


def peak_scenario(**equilibrium):
    return load_scenario(PEAK, overrides={"traffic": {"equilibrium": equilibrium}} if equilibrium else None)


@pytest.fixture(scope="module")
def peak_city():
    from twin.model import build_city

    return build_city(peak_scenario().city)


@pytest.fixture(scope="module")
def peak_runs(peak_city):
    sc = peak_scenario()
    return {
        "routes": equilibrate(sc, city=peak_city, departure_shift=False),
        "departures": equilibrate(sc, city=peak_city),
    }


def _agent_departures(twin):
    from twin.departures import _agent_car_trips

    return _agent_car_trips(twin)


def _peak_share(depart):
    """Largest share of departures within any 20 minutes (on a 1-minute grid)."""
    starts = np.arange(0.0, depart.max(), 60.0)
    return max(float(np.mean((depart >= s) & (depart < s + 1200.0))) for s in starts)


def test_agents_leave_the_peak_and_travel_faster_than_with_routes_only(peak_runs):
    routes, deps = peak_runs["routes"], peak_runs["departures"]
    assert routes.departure_shift is None and deps.departure_shift is not None
    h = deps.history
    # every day some agents move their departure, on balance earlier (leaving late costs more)
    assert all(r["departures_shifted"] > 0 for r in h)
    assert all(r["mean_departure_shift_s"] < 0 for r in h)
    assert all(r["mean_abs_departure_shift_s"] > 0 for r in h)
    assert all(np.isnan(r["departures_shifted"]) and r["mean_departure_shift_s"] == 0 for r in routes.history)
    # day 1 is the same day for both (no one has learnt yet)
    assert h[0]["mean_travel_time_s"] == routes.history[0]["mean_travel_time_s"]
    # the final day's departures are spread: fewer agents in the busiest 20 minutes
    d_routes = _agent_departures(routes.twin)["depart"]
    d_deps = _agent_departures(deps.twin)["depart"]
    assert _peak_share(d_deps) < _peak_share(d_routes) - 0.03
    # ... and the day runs faster, by travel time and by the agents' cost with the schedule penalty
    last = slice(-3, None)
    tt_routes = np.mean([r["mean_travel_time_s"] for r in routes.history[last]])
    tt_deps = np.mean([r["mean_travel_time_s"] for r in h[last]])
    assert tt_deps < 0.85 * tt_routes
    cost_routes = np.mean([r["agent_mean_cost_s"] for r in routes.history[last]])
    cost_deps = np.mean([r["agent_mean_cost_s"] for r in h[last]])
    assert cost_deps < 0.95 * cost_routes
    assert deps.history[-1]["relative_gap"] < routes.history[-1]["relative_gap"]
    # the series are in equilibrium.nc
    ds = deps.dataset()
    np.testing.assert_array_equal(ds.departures_shifted.values, [r["departures_shifted"] for r in h])
    assert ds.attrs["departure_shift"] == 1 and routes.dataset().attrs["departure_shift"] == 0


def test_agents_depart_at_plan_plus_remembered_shift(peak_runs, peak_city):
    deps = peak_runs["departures"]
    tw = deps.twin
    pop = tw.components["population"]
    assert pop.learnt_shift is tw.route_knowledge.departure_shift_s
    trips = _agent_departures(tw)
    shift = pop.learnt_shift[trips["person"], trips["leg"]]
    assert np.count_nonzero(shift) > 100
    # with no within-day shifts every agent car trip leaves at its plan's time plus its shift
    # (a decision is made at the start of a bucket: never earlier than that)
    on_time = np.isclose(trips["depart"], trips["desired"] + shift)
    assert on_time.mean() > 0.99
    # the shifts lie on the grid of candidates
    grid = np.arange(-1800.0, 1801.0, 600.0)
    assert np.isin(np.unique(deps.departure_shift), grid).all()
    # a twin without the knowledge leaves at the plans' times
    plain = Twin(peak_scenario(), city=peak_city)
    assert plain.components["population"].learnt_shift is None


def test_same_seed_same_departure_shifts(peak_city):
    sc = peak_scenario(iterations=3)
    a = equilibrate(sc, city=peak_city)
    b = equilibrate(sc, city=peak_city)
    assert np.count_nonzero(a.departure_shift) > 0
    np.testing.assert_array_equal(a.departure_shift, b.departure_shift)
    for ha, hb in zip(a.history, b.history, strict=True):
        for key in ("departures_shifted", "mean_departure_shift_s", "mean_travel_time_s", "relative_gap"):
            assert ha[key] == hb[key]
    # another seed: other agents re-plan (the draws are keyed to the seed)
    c = equilibrate(sc, city=peak_city, seed=6)
    assert c.departure_shift.shape != a.departure_shift.shape or not np.array_equal(
        c.departure_shift, a.departure_shift
    )


def test_snapshot_of_an_equilibrated_population_keeps_the_departure_shifts(peak_city, tmp_path):
    sc = peak_scenario(iterations=3)
    eq = equilibrate(sc, city=peak_city)
    tw = Twin(sc, city=peak_city, route_knowledge=eq.next_knowledge())
    tw.run_until(2700.0)  # mid-peak: some agents on the road, some still to leave
    back = Twin.restore(tw.snapshot(tmp_path / "day.snap"))
    np.testing.assert_array_equal(back.route_knowledge.departure_shift_s, eq.departure_shift)
    np.testing.assert_array_equal(back.components["population"].learnt_shift, eq.departure_shift)
    np.testing.assert_array_equal(back.components["population"].desired_t, tw.components["population"].desired_t)
    tw.run()
    back.run()
    np.testing.assert_array_equal(tw.traffic.veh.depart, back.traffic.veh.depart)
    np.testing.assert_array_equal(tw.traffic.veh.arrive, back.traffic.veh.arrive)
    # the shifts matter: without them the same knowledge gives another day
    rk = eq.next_knowledge()
    rk.departure_shift_s = None
    other = Twin(sc, city=peak_city, route_knowledge=rk)
    other.run()
    n = min(other.traffic.n_vehicles, tw.traffic.n_vehicles)
    assert not np.array_equal(other.traffic.veh.depart[:n], tw.traffic.veh.depart[:n])


def test_departure_learning_off_keeps_routes_only_days(peak_city):
    sc = peak_scenario(iterations=2, departure_shift={"enabled": False})
    off = equilibrate(sc, city=peak_city)
    zero = equilibrate(peak_scenario(iterations=2, departure_shift={"max": 0}), city=peak_city)
    assert off.departure_shift is None and zero.departure_shift is None
    assert off.history[-1]["mean_travel_time_s"] == zero.history[-1]["mean_travel_time_s"]
    assert off.twin.components["population"].learnt_shift is None


def test_no_population_no_departure_series(tmp_path):
    sc = od_scenario(tmp_path, iterations=2, gap_target=0.0)
    eq = equilibrate(sc, city=braess_city(False))
    assert eq.departure_shift is None
    for h in eq.history:
        assert np.isnan(h["departures_shifted"]) and np.isnan(h["mean_departure_shift_s"])


def test_candidate_shifts_and_entry_link_times():
    from twin.equilibrium import candidate_shifts, entry_link_times

    np.testing.assert_array_equal(candidate_shifts(1800, 600), [0, -600, 600, -1200, 1200, -1800, 1800])
    np.testing.assert_array_equal(candidate_shifts(0, 600), [0])
    np.testing.assert_array_equal(candidate_shifts(1000, 600), [0, -600, 600])
    # a steady link: entering or leaving, the same time
    x = np.full((6, 2), 100.0)
    np.testing.assert_allclose(entry_link_times(x, bin_s=600.0), x)
    # a queue recorded as vehicles leave (bin 3: 900 s) is met by those entering earlier
    x = np.array([[100.0], [100.0], [100.0], [900.0], [900.0], [100.0]])
    e = entry_link_times(x, bin_s=600.0)
    assert e[2, 0] > x[2, 0] and e[1, 0] == pytest.approx(100.0)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("max", "5h", "at most"),
        ("step", 0, "greater than 0"),
        ("step", "40min", "longer than the largest shift"),
        ("early_penalty", -1, "at least 0"),
        ("late_penalty", "x", "number"),
        ("enabled", "maybe", "true or false"),
    ],
)
def test_bad_departure_shift_settings_name_the_field(field, value, words):
    with pytest.raises(ScenarioError) as exc:
        load_scenario({"city": PLACEHOLDER, "traffic": {"equilibrium": {"departure_shift": {field: value}}}})
    text = str(exc.value)
    assert f"traffic.equilibrium.departure_shift.{field}" in text and words in text


@pytest.mark.parametrize(
    "override, field",
    [
        ({"step": -1}, "step"),
        ({"max": float("nan")}, "max"),
        ({"late_penalty": True}, "late_penalty"),
        ({"max": 600, "step": 900}, "step"),
        ({"shift": 1}, "shift"),
        ("yes", ""),
    ],
)
def test_bad_departure_shift_overrides_name_the_setting(tmp_path, override, field):
    from basics.errors import InputError

    sc = od_scenario(tmp_path)
    with pytest.raises(InputError, match=rf"traffic\.equilibrium\.departure_shift\.?{field}"):
        equilibrate(sc, city=braess_city(False), departure_shift=override)


def test_departure_shifts_of_another_population_are_refused(peak_city):
    from basics.errors import InputError

    sc = peak_scenario()
    rk = RouteKnowledge(np.ones((18, peak_city.network.n_links)), bin_s=600.0, departure_shift_s=np.zeros((3, 6)))
    with pytest.raises(InputError, match="another population"):
        Twin(sc, city=peak_city, route_knowledge=rk)


def test_cli_equilibrate_reports_departures(tmp_path, capsys):
    from twin.cli import main

    sc = tmp_path / "agents.yaml"
    sc.write_text(
        "name: agents\nseed: 3\ntime: {start: '06:30', duration: 2h}\n"
        "city: {synthetic: {blocks_x: 4, blocks_y: 4, bridges: 1, zone_blocks: 2, residents: 6000, jobs: 4000}}\n"
        "population: {enabled: true}\n"
        "traffic: {equilibrium: {iterations: 2, gap_target: 0}}\n"
    )
    assert main(["equilibrate", str(sc), "--out", str(tmp_path / "eq")]) == 0
    out = capsys.readouterr().out
    assert "departures moved" in out and "mean shift" in out
    with xr.open_dataset(tmp_path / "eq" / "equilibrium.nc", engine="h5netcdf") as ds:
        assert ds.attrs["departure_shift"] == 1 and np.isfinite(ds.departures_shifted.values).all()
    assert main(["equilibrate", str(sc), "--out", str(tmp_path / "eq2"), "--routes-only", "-q"]) == 0
    with xr.open_dataset(tmp_path / "eq2" / "equilibrium.nc", engine="h5netcdf") as ds:
        assert ds.attrs["departure_shift"] == 0


def test_the_gap_on_a_sample_of_trips_estimates_the_full_gap(small_city):
    from tests.twin.conftest import small_scenario
    from twin.equilibrium import experienced_link_times, relative_gap, run_day

    tw = Twin(small_scenario(**{"demand.gravity.total_trips": 6000}), city=small_city)
    is_open = run_day(tw, bin_s=300.0)
    x = experienced_link_times(tw)
    full = relative_gap(tw, x, is_open, bin_s=300.0, sample=None)
    part = relative_gap(tw, x, is_open, bin_s=300.0, sample=1500)
    again = relative_gap(tw, x, is_open, bin_s=300.0, sample=1500)
    assert full["trips"] > 4000 and part["trips"] == 1500
    assert part["relative_gap"] == again["relative_gap"]  # the same trips every time
    assert full["relative_gap"] > 0
    assert part["relative_gap"] == pytest.approx(full["relative_gap"], rel=0.25)
    counted = np.isfinite(part["best_time_s"])
    np.testing.assert_allclose(part["best_time_s"][counted], full["best_time_s"][counted])


def test_weights_move_only_beyond_the_deadband(tmp_path):
    """Remembered times within the deadband of the weights in use leave them as they are;
    a change beyond it is taken; memory alone (memory_weight 1) makes the check exact."""
    sc = od_scenario(tmp_path, rate_vph=600.0)
    city = braess_city(True)
    free = Twin(sc, city=city).traffic.links.free_tt
    k = np.tile(free, (18, 1))
    tw = Twin(sc, city=city, route_knowledge=RouteKnowledge(k, bin_s=300.0, memory_weight=1.0, deadband=0.05))
    np.testing.assert_array_equal(tw.traffic.routes.weight, free)
    rk = tw.route_knowledge
    rk.link_time_s = k * np.where(np.arange(free.size) % 2 == 0, 1.04, 1.10)  # even links within 5 %, odd beyond
    rk.update(tw)
    w = tw.traffic.routes.weight
    np.testing.assert_array_equal(w[0::2], free[0::2])
    np.testing.assert_allclose(w[1::2], 1.10 * free[1::2])
    rk.deadband = 0.0
    rk.update(tw)
    np.testing.assert_allclose(tw.traffic.routes.weight, rk.link_time_s[0])
    with pytest.raises(ValueError, match="deadband"):
        RouteKnowledge(k, bin_s=300.0, deadband=1.5)
