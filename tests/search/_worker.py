"""A study worker process on the synthetic evaluator (for concurrency and kill tests).

Usage: python _worker.py CONFIG_JSON STORAGE_URL [HEARTBEAT_S] [resume]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import SyntheticEvaluator  # noqa: E402

from paretoedge.search import (  # noqa: E402
    SearchRunner,
    parse_config,  # noqa: E402
    resume_runner,
)


def main() -> None:
    config_path, url = sys.argv[1], sys.argv[2]
    heartbeat = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    config = parse_config(json.loads(Path(config_path).read_text()), check_names=False)
    kw = {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat}
    artifacts = Path(config_path).parent / "artifacts"
    if len(sys.argv) > 4 and sys.argv[4] == "resume":
        runner = resume_runner(
            config.name,
            storage_url=url,
            evaluator_factory=SyntheticEvaluator,
            artifacts_dir=artifacts,
            **kw,
        )
    else:
        runner = SearchRunner(
            config,
            storage_url=url,
            evaluator_factory=SyntheticEvaluator,
            artifacts_dir=artifacts,
            **kw,
        )
    summary = runner.run()
    print(json.dumps({"complete": summary.trials_complete}))


if __name__ == "__main__":
    from paretoedge.errors import ParetoEdgeError

    try:
        main()
    except ParetoEdgeError as exc:  # as the CLI does: one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
