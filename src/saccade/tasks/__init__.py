"""Released models on a task in one line: `Segmenter` (a canvas probe) and `Classifier` (a recurrent-CLS readout).

Both load from local folders, Hub ids or mirror names (saccade.hub), run an episode under any policy of the
registry, and take images as files, PIL images or tensors (saccade.tasks.scenes).
"""

from saccade.tasks.classifier import Classifier, fuse_teacher_probe
from saccade.tasks.episode import task_episode
from saccade.tasks.scenes import to_scene
from saccade.tasks.segmenter import Segmenter

__all__ = ["Classifier", "Segmenter", "fuse_teacher_probe", "task_episode", "to_scene"]
