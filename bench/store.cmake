# `snapvm bench store` (bench_store.c), included by bench/CMakeLists.txt.
target_sources(snapvm_bench PRIVATE ${CMAKE_CURRENT_LIST_DIR}/bench_store.c)
target_link_libraries(snapvm_bench PUBLIC snapvm_store)
