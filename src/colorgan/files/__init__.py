"""Files on disk, one rule each: which ones are photos and videos (:mod:`.discovery`), writing so
that no reader ever sees half of one (:mod:`.atomic`), encoding colorized photos in each format
(:mod:`.images`) and recognizing colorgan's own outputs (:mod:`.provenance`)."""
