"""v1recon: reconstruct the movie a mouse saw from the activity of its visual cortex."""

__version__ = "0.1.0"

FRAME_RATE_HZ = 30.0
FRAME_SHAPE = (36, 64)  # height, width in pixels
EVAL_START_FRAME = 30  # first frame with a full second of context
BEHAVIOUR_CHANNELS = ("pupil_dilation", "running_speed", "pupil_x", "pupil_y")

# Published procedure and the defaults sized for a CPU, stated once (commands, jobs and algorithms read them here).
PUBLISHED_ITERATIONS = 1000  # iterations of the published reconstruction loop, and of its mask training
FAST_MAX_STEPS = 100  # the fast method's step limit (it usually stops earlier, on a loss plateau)
CPU_MASK_ITERATIONS = 150  # mask iterations by default: affordable on a CPU
UPDATE_THRESHOLD = 0.5  # alpha >= this: pixels updated during reconstruction (published)
EVAL_THRESHOLD = 1.0  # alpha >= this: pixels evaluated (published)
