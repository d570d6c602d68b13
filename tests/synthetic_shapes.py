"""A handful of images with exactly known boxes: coloured shapes pasted on real photos."""
import os

import cv2
import numpy as np

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

CLASSES = ["rectangle", "ellipse"]


def make_shapes_dataset(out_dir: str, num_images: int = 4, size: int = 256, seed: int = 0):
    """Write ``num_images`` photos with 2-3 shapes each; return Detectron2 dataset dicts."""
    import skimage

    rng = np.random.default_rng(seed)
    photos = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
    os.makedirs(out_dir, exist_ok=True)
    dicts = []
    for i in range(num_images):
        photo = cv2.imread(os.path.join(skimage.data_dir, photos[i % len(photos)]), cv2.IMREAD_COLOR)
        image = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
        annotations = []
        for j in range(2 + i % 2):
            w, h = rng.integers(size // 6, size // 3, size=2)
            x0 = int(rng.integers(0, size - w)) if j == 0 else int((size // 2) * (j % 2) + rng.integers(0, size // 2 - w))
            y0 = int(rng.integers(0, size - h)) if j == 0 else int((size // 2) * (j // 2) + rng.integers(0, size // 2 - h))
            cls = j % 2
            color = (int(rng.integers(0, 80)), int(rng.integers(180, 256)), int(rng.integers(0, 80)))
            if cls == 0:
                cv2.rectangle(image, (x0, y0), (x0 + int(w) - 1, y0 + int(h) - 1), color, -1)
            else:
                cv2.ellipse(image, (x0 + int(w) // 2, y0 + int(h) // 2), (int(w) // 2, int(h) // 2), 0, 0, 360, color, -1)
            annotations.append(
                {"bbox": [x0, y0, x0 + int(w), y0 + int(h)], "bbox_mode": BoxMode.XYXY_ABS, "category_id": cls}
            )
        path = os.path.join(out_dir, f"shapes_{i}.png")
        cv2.imwrite(path, image)
        dicts.append({"file_name": path, "image_id": i, "height": size, "width": size, "annotations": annotations})
    return dicts


def register_shapes_dataset(name: str, dicts) -> None:
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=list(CLASSES), evaluator_type="coco")
