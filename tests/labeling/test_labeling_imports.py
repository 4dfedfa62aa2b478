import subprocess
import sys


def test_labeling_modules_import_without_heavy_dependencies():
    code = (
        "import sys\n"
        "import emoforge.labeling, emoforge.labeling.cli, emoforge.labeling.label, emoforge.labeling.labels\n"
        "import emoforge.labeling.speed, emoforge.labeling.velocity, emoforge.labeling.stats, emoforge.labeling.mask\n"
        "import emoforge.labeling.pose, emoforge.labeling.faces, emoforge.labeling.audio, emoforge.labeling.sync\n"
        "import emoforge.labeling.speakers, emoforge.labeling.video, emoforge.labeling.corpus, emoforge.labeling.shots\n"
        "heavy = {'mediapipe', 'cv2', 'av', 'torch', 'silero_vad', 'transformers', 'pandas', 'scipy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
