import numpy as np
import pytest
import torch

from hashflow.grid import (HashGridConfig, axis_weight_matrix, hash_index, init_tables,
                           lagrange_weights, sample_grid, sample_points, vertex_grid,
                           vertex_table_index)


def tiny_config(order=2, **kw):
    return HashGridConfig(levels=2, features=1, log2_table_size=6, base_resolution=4,
                          finest_resolution=16, order=order, **kw)


def test_default_resolutions_and_dense_levels():
    config = HashGridConfig()
    assert config.resolutions() == [16, 20, 26, 34, 43, 56, 72, 93, 120, 154, 198, 256]
    assert [config.is_dense(l) for l in range(12)] == [True] * 6 + [False] * 6
    assert config.for_image(300, 200).resolutions()[-1] == 300


def test_hash_matches_hand_computed_values():
    ix = torch.tensor([0, 1, 0, 3, 100])
    iy = torch.tensor([0, 0, 1, 2, 200])
    expected = [((i * 1) ^ ((j * 2654435761) & 0xFFFFFFFF)) % 4096 for i, j in
                zip(ix.tolist(), iy.tolist())]
    assert hash_index(ix, iy, 4096).tolist() == expected
    assert expected[:4] == [0, 1, 2654435761 % 4096, (3 ^ (5308871522 & 0xFFFFFFFF)) % 4096]


def test_dense_vertex_index_is_row_major_and_clamped():
    config = tiny_config()
    n = config.resolutions()[0]
    assert config.is_dense(0)
    idx = vertex_table_index(config, 0, torch.tensor([2, -1, n + 3]), torch.tensor([1, 0, n]))
    assert idx.tolist() == [(n + 1) + 2, 0, n * (n + 1) + n]


@pytest.mark.parametrize("order", [1, 2, 3])
def test_weights_sum_to_one(order):
    t = torch.rand(50, dtype=torch.float64)
    assert torch.allclose(lagrange_weights(t, order).sum(-1), torch.ones(50, dtype=torch.float64))


def test_order_one_is_bilinear_on_hand_made_grid():
    config = HashGridConfig(levels=1, features=1, log2_table_size=6, base_resolution=4,
                            finest_resolution=4, order=1)
    grid = torch.arange(25, dtype=torch.float64).view(5, 5) ** 1.5  # vertex (ix, iy) -> grid[iy, ix]
    tables = torch.zeros(1, 1, 64, 1, dtype=torch.float64)
    tables[0, 0, :25, 0] = grid.reshape(-1)
    # image extent 4 -> grid coordinate = x + 0.5
    points = torch.tensor([[[0.7, 1.2], [2.1, 0.3]]], dtype=torch.float64)
    got = sample_points(tables, points, config, (4, 4))[0, :, 0]
    for k, (x, y) in enumerate(points[0].tolist()):
        gx, gy = x + 0.5, y + 0.5
        x0, y0 = int(np.floor(gx)), int(np.floor(gy))
        tx, ty = gx - x0, gy - y0
        want = ((1 - tx) * (1 - ty) * grid[y0, x0] + tx * (1 - ty) * grid[y0, x0 + 1]
                + (1 - tx) * ty * grid[y0 + 1, x0] + tx * ty * grid[y0 + 1, x0 + 1])
        assert got[k].item() == pytest.approx(want.item(), abs=1e-12)


def test_order_two_reproduces_cubic_on_dense_level():
    config = HashGridConfig(levels=1, features=1, log2_table_size=10, base_resolution=16,
                            finest_resolution=16, order=2)
    n = 16

    def cubic(gx, gy):
        return 0.3 * gx ** 3 - 0.5 * gx * gy ** 2 + 0.2 * gy ** 3 + gx - 2.0

    iy, ix = torch.meshgrid(torch.arange(n + 1.0), torch.arange(n + 1.0), indexing="ij")
    tables = torch.zeros(1, 1, 1024, 1, dtype=torch.float64)
    tables[0, 0, :(n + 1) ** 2, 0] = cubic(ix, iy).reshape(-1).double()
    points = torch.rand(1, 40, 2, dtype=torch.float64) * 10 + 2.5  # taps stay inside the grid
    got = sample_points(tables, points, config, (16, 16))[0, :, 0]
    gx, gy = points[0, :, 0] + 0.5, points[0, :, 1] + 0.5
    assert torch.allclose(got, cubic(gx, gy), atol=1e-9)


@pytest.mark.parametrize("order", [1, 2])
def test_gradcheck_coordinates_and_tables(order):
    config = tiny_config(order)
    tables = init_tables(config, 1, scale=1.0).double().requires_grad_()
    points = (torch.rand(1, 5, 2, dtype=torch.float64) * 14 + 0.3).requires_grad_()
    fn = lambda t, p: sample_points(t, p, config, (16, 16))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (tables, points), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_full_frame_path_equals_point_path(order):
    config = HashGridConfig(order=order).for_image(40, 56)
    tables = init_tables(config, 2, scale=1.0)
    offset = torch.tensor([1.3, -2.6])
    dense = sample_grid(tables, config, (40, 56), offset=offset)
    ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(56.0), indexing="ij")
    points = torch.stack([xs, ys], -1).reshape(1, -1, 2).expand(2, -1, -1) + offset
    sparse = sample_points(tables, points, config, (40, 56))
    assert torch.allclose(dense.flatten(2).transpose(1, 2), sparse, atol=1e-5)


def test_full_frame_path_carries_gradients_to_tables_and_offset():
    config = tiny_config()
    tables = init_tables(config, 1, scale=1.0).double().requires_grad_()
    offset = torch.tensor([0.3, 0.4], dtype=torch.float64, requires_grad=True)
    fn = lambda t, o: sample_grid(t, config, (12, 16), offset=o)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (tables, offset), eps=1e-6, atol=1e-5)


def test_level_truncation_zeroes_fine_levels():
    config = tiny_config()
    tables = init_tables(config, 1, scale=1.0)
    points = torch.rand(1, 7, 2) * 15
    feats = sample_points(tables, points, config, (16, 16), levels=1)
    assert torch.all(feats[..., 1:] == 0) and torch.any(feats[..., :1] != 0)
    grid_feats = sample_grid(tables, config, (16, 16), levels=1)
    assert torch.all(grid_feats[:, 1:] == 0)


def test_vertex_grid_and_axis_matrix_shapes():
    config = tiny_config()
    tables = init_tables(config, 3, scale=1.0)
    assert vertex_grid(tables, config, 1).shape == (3, 1, 17, 17)
    matrix = axis_weight_matrix(16, 16, 16, 2)
    assert matrix.shape == (16, 17)
    assert torch.allclose(matrix.sum(1), torch.ones(16))


def test_bad_order_raises():
    with pytest.raises(ValueError, match="order"):
        HashGridConfig(order=4)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_analytic_jacobian_matches_autograd(order):
    from hashflow.decoder import Decoder
    from hashflow.grid import sample_vertex_grids, sample_with_jacobian, stacked_vertex_grids
    config = HashGridConfig(order=order).for_image(32, 40)
    tables = init_tables(config, 1, scale=1.0).double()
    grids, offsets = stacked_vertex_grids(tables, config, levels=9)
    points = (torch.rand(1, 6, 2, dtype=torch.float64) * 30 + 0.2).requires_grad_()
    value, grad = sample_with_jacobian(grids, offsets, points, config, (32, 40))
    reference = sample_vertex_grids(grids, offsets, points, config, (32, 40))
    assert torch.allclose(value, reference, atol=1e-10)
    for f in range(3):
        auto, = torch.autograd.grad(reference[0, :, f].sum(), points, retain_graph=True)
        assert torch.allclose(grad[0, :, :, f], auto[0], atol=1e-9)
    decoder = Decoder(value.shape[-1]).double()
    colour, jac = decoder.forward_with_jacobian(value, grad)
    for c in range(3):
        auto, = torch.autograd.grad(decoder(reference)[0, :, c].sum(), points, retain_graph=True)
        assert torch.allclose(jac[0, :, c, :], auto[0], atol=1e-9)
    assert torch.allclose(colour, decoder(reference))


def test_lagrange_weights_hand_values():
    half = torch.tensor([0.5], dtype=torch.float64)
    expected = torch.tensor([[-1 / 16, 9 / 16, 9 / 16, -1 / 16]], dtype=torch.float64)
    assert torch.allclose(lagrange_weights(half, 2), expected)
    assert torch.allclose(lagrange_weights(torch.tensor([0.25]), 1), torch.tensor([[0.75, 0.25]]))
    at_node = lagrange_weights(torch.tensor([0.0], dtype=torch.float64), 3)
    assert torch.allclose(at_node, torch.tensor([[0, 0, 1.0, 0, 0, 0]], dtype=torch.float64))
