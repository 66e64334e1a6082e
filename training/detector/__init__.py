"""The "chat"/"rat" word detector: generator, the seed's humble YOLO, our detector, mAP."""
