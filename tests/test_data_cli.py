"""`dgl-tgnn datasets`."""

import pytest
from click.testing import CliRunner

from dgl_tgnn.cli import main
from dgl_tgnn.data.summary import format_span


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DGL_TGNN_CACHE", str(tmp_path / "cache"))


def test_datasets_table_has_published_counts():
    result = CliRunner().invoke(main, ["datasets"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    assert rows["wikipedia"][1:7] == ["jodie", "157,474", "9,227", "0", "yes", "31.0"]
    assert rows["uci"][2:4] == ["59,835", "1,899"]
    assert rows["bitcoinotc"][2:5] == ["35,592", "5,881", "1"]
    assert rows["enron"][2:4] == ["125,235", "184"]
    assert rows["mathoverflow"][2:4] == ["506,550", "24,818"]
    assert rows["zipf-1m"][2:4] == ["1,000,000", "100,000"]
    assert rows["zipf-1m"][-2:] == ["30.0", "days"]
    assert [rows[name][5] for name in ("uci", "bitcoinotc", "enron", "mathoverflow")] == ["no"] * 4


def test_datasets_on_a_file(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("1 2 0\n2 3 5400\n")
    result = CliRunner().invoke(main, ["datasets", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split() == ["e", "edgelist", "2", "3", "0", "no", "1.5", "hours"]


def test_datasets_data_says_whether_it_is_bipartite_and_takes_the_flag(tmp_path):
    path = tmp_path / "buys.csv"
    path.write_text("user,item,t\nann,tea,1\nbob,tea,2\nann,jam,3\n")
    guessed = CliRunner().invoke(main, ["datasets", "--data", str(path)])
    assert guessed.exit_code == 0, guessed.output
    assert "nodes 4 (string ids, rows in order of first appearance), bipartite: yes (users then items)" in (
        guessed.output
    )
    assert (
        "guessed: bipartite: yes, no id is both a source and a destination (--no-bipartite)" in guessed.output
    )
    given = CliRunner().invoke(main, ["datasets", "--data", str(path), "--no-bipartite"])
    assert "bipartite: no" in given.output and "guessed: bipartite" not in given.output
    wrong = CliRunner().invoke(main, ["datasets", "--data", str(path), "--format", "jodie", "--bipartite"])
    assert wrong.exit_code == 1
    assert wrong.output == "Error: --bipartite applies to --format csv and edgelist, not to --format jodie\n"


def test_bad_file_is_one_error_line(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("1 2 0\n2 3 x\n")
    result = CliRunner().invoke(main, ["datasets", str(path)])
    assert result.exit_code == 1
    assert result.output == f"Error: {path}:2: time is not a number: 'x'\n"


@pytest.mark.parametrize(
    "seconds, text",
    [
        (42, "42.0 seconds"),
        (90, "1.5 minutes"),
        (2 * 86400 + 43200, "2.5 days"),
        (30 * 86400, "30.0 days"),
        (3 * 365.25 * 86400, "3.0 years"),
    ],
)
def test_format_span(seconds, text):
    assert format_span(seconds) == text


def test_a_run_from_before_the_bipartite_setting_reads_its_file_as_one_id_space(tmp_path):
    from dgl_tgnn.config import load_config
    from dgl_tgnn.run_dir import load_run_config

    run = tmp_path / "run"
    run.mkdir()
    text = "model:\n  name: tgn\ndata:\n  path: buys.csv\n  format: csv\n"
    (run / "config.yaml").write_text(text)  # what runs wrote before data.bipartite existed
    assert load_run_config(run).data.bipartite is False  # as it was trained: not guessed
    assert load_config(run / "config.yaml").data.bipartite is None  # a config of one's own: guessed
    (run / "config.yaml").write_text(text + "  bipartite: true\n")
    assert load_run_config(run).data.bipartite is True
    (run / "config.yaml").write_text(text.replace("csv\n", "jodie\n"))  # (JODIE files decide it)
    assert load_run_config(run).data.bipartite is None


def test_datasets_reads_its_file_arguments_with_the_loader_options(tmp_path):
    path = tmp_path / "buys.csv"
    path.write_text("user,item,t\nann,tea,1\nbob,tea,2\nann,jam,3\n")
    rows = [CliRunner().invoke(main, ["datasets", str(path), *flag]) for flag in ([], ["--no-bipartite"])]
    assert [r.output.splitlines()[1].split()[5] for r in rows] == ["yes", "no"]  # the bipartite column
    built_in = CliRunner().invoke(main, ["datasets", "uci", "--keep-ids"])  # (it did nothing before)
    assert built_in.exit_code == 1 and len(built_in.output.splitlines()) == 1
    assert "not for the built-in dataset 'uci'" in built_in.output


@pytest.mark.parametrize(("key", "value"), [("bipartite", "true"), ("keep_ids", "true"), ("src_col", "user")])
def test_a_config_s_file_setting_with_a_built_in_dataset_fails_in_one_line(tmp_path, key, value):
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  dataset: uci\n  {key}: {value}\n")
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--epochs", "1"])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    assert (
        f"data.{key} describes a --data file (data.path): it does nothing with the built-in dataset 'uci'"
        in (result.output)
    )


def test_dataset_replaces_a_config_s_file_and_its_file_settings(tmp_path):
    csv = tmp_path / "buys.csv"
    csv.write_text("user,item,t\nann,tea,1\nbob,tea,2\nann,jam,3\n")
    config = tmp_path / "c.yaml"  # a run's config.yaml reused: the file as read, guesses resolved
    config.write_text(f"data:\n  path: {csv}\n  format: csv\n  src_col: user\n  bipartite: true\n")
    runs = tmp_path / "runs"
    args = ["--config", str(config), "--dataset", "uci", "--max-events", "300", "--epochs", "1"]
    result = CliRunner().invoke(main, ["train", *args, "--runs-dir", str(runs), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "data: uci" in result.output and "bipartite: no" in result.output
